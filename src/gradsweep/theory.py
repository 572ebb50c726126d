"""The mean-field prediction for a run (issue 23): its init in the theory's terms and χ₁.

gradsweep.meanfield speaks of W ~ N(0, σ_w²/fan_in) and b ~ N(0, σ_b²) in every layer. This
module reads a run's settings (runs.parquet's columns) as that (σ_w², σ_b²), for the
hidden-to-hidden layers (layers 2 … L, whose gradient ratio the verdicts read), and predicts
χ₁ and the grad ratio at initialisation, χ₁^(−(L−1)/2) for L hidden layers.

σ_w² = fan_in · Var(W_ij) (× ``weight_scale``², which multiplies every kernel). Each init of
gradsweep.model draws weights of variance ``scale / n``:

- ``n = fan_in``: scaled_normal, lecun_normal, lecun_uniform (scale 1), scaled_normal_relu,
  he_normal, he_uniform (2), standard_uniform (1/3): σ_w² = scale, at any widths;
- ``n = (fan_in + fan_out)/2``: glorot_normal, glorot_uniform (scale 1): σ_w² = 2 fan_in /
  (fan_in + fan_out), 1 when the hidden widths are equal;
- ``normal`` (N(0, 1) weights): σ_w² = fan_in, the width.

Keras' truncated normals (he_normal, lecun_normal, glorot_normal) are rescaled so that their
variance is ``scale / n``, and the uniform ones have the variance of their normal twins; the
wide-net theory depends only on the variance. ``bias_init: normal`` is σ_b² = 1, ``zeros`` 0.

Null (the theory does not apply, :func:`not_applicable` says why):

- batch or layer norm, or residual connections: they change the variance and correlation
  maps (the remedies), which the plain theory does not model;
- a hidden layer of width 1 (the one-path net): the theory is the limit of wide layers;
- a width-dependent init (normal, glorot_*) whose σ_w² differs between the hidden-to-hidden
  layers (unequal widths), or a net with one hidden layer, which has no such layer to read it
  from (a fan-in init has its σ_w² at any depth).

``grad_ratio_predicted`` is also null for one hidden layer, which has no ratio
(gradsweep.verdicts.has_ratio).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any

from gradsweep import meanfield
from gradsweep.registry import BIAS_INITS, INITS
from gradsweep.settings import widths_list
from gradsweep.verdicts import has_ratio

# init → (n, scale): Var(W_ij) = scale / n with n = "fan_in", "fan_avg" or "one" (as model.py)
INIT_VARIANCE: dict[str, tuple[str, float]] = {
    "normal": ("one", 1.0),
    "scaled_normal": ("fan_in", 1.0),
    "scaled_normal_relu": ("fan_in", 2.0),
    "standard_uniform": ("fan_in", 1.0 / 3.0),
    "glorot_normal": ("fan_avg", 1.0),
    "glorot_uniform": ("fan_avg", 1.0),
    "he_normal": ("fan_in", 2.0),
    "he_uniform": ("fan_in", 2.0),
    "lecun_normal": ("fan_in", 1.0),
    "lecun_uniform": ("fan_in", 1.0),
}
BIAS_VARIANCE: dict[str, float] = {"normal": 1.0, "zeros": 0.0}
if set(INIT_VARIANCE) != set(INITS) or set(BIAS_VARIANCE) != set(BIAS_INITS):
    raise ImportError("gradsweep.theory must map exactly the registry's inits and bias inits")

# runs.parquet's prediction columns, in order (docs/outputs.md)
COLUMNS = ("weight_variance", "bias_variance", "chi1_predicted", "grad_ratio_predicted")


def layer_weight_variance(init: str, fan_in: int, fan_out: int, weight_scale: float = 1.0) -> float:
    """σ_w² = fan_in · Var(W_ij) of one layer drawn by ``init`` (times ``weight_scale``²)."""
    mode, scale = INIT_VARIANCE[init]
    n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2, "one": 1.0}[mode]
    return fan_in * scale / n * weight_scale**2


def not_applicable(settings: Mapping[str, Any]) -> str | None:
    """Why the theory gives no σ_w² for a run with these settings (None: it does)."""
    for key, known in (("init", INIT_VARIANCE), ("bias_init", BIAS_VARIANCE)):
        if str(settings.get(key)) not in known:  # e.g. a run.json from before the setting
            return f"{key} {settings.get(key)!r} not recorded or not known"
    if settings.get("normalization") not in (None, "none"):
        return f"{settings['normalization']} changes the variance map"
    if settings.get("residual"):
        return "residual connections change the variance map"
    widths = widths_list(settings.get("widths"))
    if not widths or min(widths) < 2:
        return "a hidden layer of width 1: the theory is the limit of wide layers"
    mode, _ = INIT_VARIANCE[str(settings["init"])]
    if mode == "fan_in":
        return None
    if len(widths) == 1:
        return f"{settings['init']} depends on the widths; one hidden layer: none to read"
    if len(set(widths)) > 1:
        return f"{settings['init']} with unequal widths: σ_w² differs between layers"
    return None


def weight_variance(settings: Mapping[str, Any]) -> float | None:
    """The run's σ_w² in its hidden-to-hidden layers (None: :func:`not_applicable`)."""
    if not_applicable(settings) is not None:
        return None
    widths = widths_list(settings["widths"])
    fans = list(zip(widths[:-1], widths[1:], strict=True)) or [(widths[0], widths[0])]
    scale = float(settings.get("weight_scale") or 1.0)
    values = {layer_weight_variance(str(settings["init"]), i, o, scale) for i, o in fans}
    return values.pop()  # one value: not_applicable excluded every init that varies by layer


def bias_variance(settings: Mapping[str, Any]) -> float | None:
    """The run's σ_b² (None where the theory does not apply)."""
    if not_applicable(settings) is not None:
        return None
    return BIAS_VARIANCE[str(settings["bias_init"])]


@cache
def chi_1(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """meanfield.chi_1, cached: a sweep has few distinct (activation, σ_w², σ_b²)."""
    return float(meanfield.chi_1(activation, sigma_w2, sigma_b2))


def prediction(settings: Mapping[str, Any]) -> dict[str, float | None]:
    """runs.parquet's :data:`COLUMNS` for a run with these settings (None: null)."""
    w, b = weight_variance(settings), bias_variance(settings)
    if w is None or b is None:
        return dict.fromkeys(COLUMNS)
    chi = chi_1(str(settings["activation"]), w, b)
    depth = len(widths_list(settings["widths"]))
    ratio = meanfield.gradient_ratio(chi, depth - 1) if has_ratio(depth) else None
    if ratio is not None and not math.isfinite(float(ratio)):
        ratio = None
    return {"weight_variance": w, "bias_variance": b, "chi1_predicted": chi,
            "grad_ratio_predicted": ratio}  # fmt: skip
