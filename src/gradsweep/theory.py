"""The mean-field prediction for a run (issue 23): its init in the theory's terms and χ₁.

gradsweep.meanfield speaks of W ~ N(0, σ_w²/fan_in) and b ~ N(0, σ_b²) in every layer. This
module reads a run's settings (runs.parquet's columns) as that (σ_w², σ_b²), for the
hidden-to-hidden layers (layers 2 … L, whose gradient ratio the verdicts read), and predicts
χ₁ and the grad ratio at initialisation, χ₁^(−(L−1)/2) for L hidden layers.

A run's ``weight_variance`` and ``bias_variance`` settings (gradsweep.config) are its σ_w² and
σ_b² where given. Unset, they are the init's own, which :func:`variances` fills in for
runs.parquet. σ_w² = fan_in · Var(W_ij) (× ``weight_scale``², which multiplies every kernel).
Each init of gradsweep.model draws weights of variance ``scale / n``:

- ``n = fan_in``: scaled_normal, lecun_normal, lecun_uniform (scale 1), scaled_normal_relu,
  he_normal, he_uniform (2), standard_uniform (1/3): σ_w² = scale, at any widths;
  scaled_normal with ``weight_variance`` σ_w² draws N(0, σ_w²/fan_in);
- ``n = (fan_in + fan_out)/2``: glorot_normal, glorot_uniform (scale 1): σ_w² = 2 fan_in /
  (fan_in + fan_out), 1 when the hidden widths are equal;
- ``n = max(fan_in, fan_out)``: orthogonal, gain g = √``weight_variance`` (1 unset), scale g²:
  a square layer is g × an orthogonal matrix, σ_w² = g²; a narrowing layer (fan_in > fan_out)
  has orthonormal rows times g, σ_w² = g² too; a widening one (fan_in < fan_out) has
  orthonormal columns, σ_w² = g² fan_in/fan_out. The theory reads only the variance, so it
  treats an orthogonal layer as a Gaussian one of that σ_w² (the mean-square gradient is the
  same; its spread over directions is not, Pennington et al. 2017);
- ``normal`` (N(0, 1) weights): σ_w² = fan_in, the width.

Keras' truncated normals (he_normal, lecun_normal, glorot_normal) are rescaled so that their
variance is ``scale / n``, and the uniform ones have the variance of their normal twins; the
wide-net theory depends only on the variance. ``bias_init: normal`` is σ_b² = 1 (or
``bias_variance``), ``zeros`` 0.

No prediction (:func:`not_applicable` says why), and no σ_w², σ_b² where the setting is unset:

- batch or layer norm, or residual connections: they change the variance and correlation
  maps (the remedies), which the plain theory does not model;
- a hidden layer of width 1 (the one-path net): the theory is the limit of wide layers;
- a width-dependent init: normal or glorot_* with unequal hidden widths (σ_w² differs between
  layers), orthogonal with a widening hidden-to-hidden layer (σ_w² differs between layers;
  narrowing and square ones all have g²), or any of them with one hidden layer, which has no
  such layer to read it from (a fan-in init has its σ_w² at any depth).

``grad_ratio_predicted`` and ``grad_slope_predicted`` (ln χ₁ / 2, the change of ln RMS‖δ_l(x)‖
per layer toward the input, beside runs.parquet's measured ``grad_slope_init``) are also null
for one hidden layer, which has no ratio (gradsweep.verdicts.has_ratio).
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

# init → (n, scale): Var(W_ij) = scale / n with n = "fan_in", "fan_avg", "fan_max" or "one"
# (as model.py draws them)
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
    "orthogonal": ("fan_max", 1.0),
}
BIAS_VARIANCE: dict[str, float] = {"normal": 1.0, "zeros": 0.0}
if set(INIT_VARIANCE) != set(INITS) or set(BIAS_VARIANCE) != set(BIAS_INITS):
    raise ImportError("gradsweep.theory must map exactly the registry's inits and bias inits")

# runs.parquet's prediction columns, in order (docs/outputs.md); the σ_w² and σ_b² a run had
# are its settings' columns weight_variance and bias_variance (:func:`variances`)
COLUMNS = ("chi1_predicted", "grad_ratio_predicted", "grad_slope_predicted")
VARIANCES = ("weight_variance", "bias_variance")


def layer_weight_variance(
    init: str, fan_in: int, fan_out: int, weight_scale: float = 1.0, variance: float | None = None
) -> float:
    """σ_w² = fan_in · Var(W_ij) of one layer drawn by ``init`` (times ``weight_scale``²);
    ``variance``: the run's ``weight_variance`` setting, in place of the init's scale."""
    mode, scale = INIT_VARIANCE[init]
    scale = scale if variance is None else variance
    n = {
        "fan_in": fan_in,
        "fan_avg": (fan_in + fan_out) / 2,
        "fan_max": max(fan_in, fan_out),
        "one": 1.0,
    }[mode]
    return fan_in * scale / n * weight_scale**2


def given(settings: Mapping[str, Any], key: str) -> float | None:
    """The run's ``weight_variance`` or ``bias_variance`` setting (None: unset, or null/NaN as
    runs.parquet reads it back)."""
    value = settings.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _hidden_weight_variances(settings: Mapping[str, Any]) -> set[float]:
    """σ_w² of each hidden-to-hidden layer (the first hidden layer's own, for one)."""
    widths = widths_list(settings["widths"])
    fans = list(zip(widths[:-1], widths[1:], strict=True)) or [(widths[0], widths[0])]
    scale = float(settings.get("weight_scale") or 1.0)
    init, variance = str(settings["init"]), given(settings, "weight_variance")
    return {layer_weight_variance(init, i, o, scale, variance) for i, o in fans}


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
    if mode != "fan_max" and len(set(widths)) > 1:
        return f"{settings['init']} with unequal widths: σ_w² differs between layers"
    if len(_hidden_weight_variances(settings)) > 1:  # orthogonal: g² where fan_in ≥ fan_out
        return f"{settings['init']} with a widening hidden layer: σ_w² differs between layers"
    return None


def weight_variance(settings: Mapping[str, Any]) -> float | None:
    """The run's σ_w²: its ``weight_variance`` setting, else that of its hidden-to-hidden
    layers (None: :func:`not_applicable`)."""
    if (value := given(settings, "weight_variance")) is not None:
        return value
    if not_applicable(settings) is not None:
        return None
    return _hidden_weight_variances(settings).pop()  # one value: not_applicable checked it


def bias_variance(settings: Mapping[str, Any]) -> float | None:
    """The run's σ_b²: its ``bias_variance`` setting, else its bias init's (None where the
    theory does not apply)."""
    if (value := given(settings, "bias_variance")) is not None:
        return value
    if not_applicable(settings) is not None:
        return None
    return BIAS_VARIANCE[str(settings["bias_init"])]


def variances(settings: Mapping[str, Any]) -> dict[str, float | None]:
    """runs.parquet's ``weight_variance`` and ``bias_variance``: the σ² the run had."""
    return {"weight_variance": weight_variance(settings), "bias_variance": bias_variance(settings)}


@cache
def chi_1(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """meanfield.chi_1, cached: a sweep has few distinct (activation, σ_w², σ_b²)."""
    return float(meanfield.chi_1(activation, sigma_w2, sigma_b2))


def prediction(settings: Mapping[str, Any]) -> dict[str, float | None]:
    """runs.parquet's :data:`COLUMNS` for a run with these settings (None: null)."""
    w, b = weight_variance(settings), bias_variance(settings)
    if not_applicable(settings) is not None or w is None or b is None:
        return dict.fromkeys(COLUMNS)
    chi = chi_1(str(settings["activation"]), w, b)
    depth = len(widths_list(settings["widths"]))
    ratio = meanfield.gradient_ratio(chi, depth - 1) if has_ratio(depth) else None
    if ratio is not None and not math.isfinite(float(ratio)):
        ratio = None
    # ln RMS‖δ_l(x)‖ per layer toward the input: the mean square shrinks by χ₁ per layer
    slope = math.log(chi) / 2 if has_ratio(depth) and chi > 0 else None
    return {"chi1_predicted": chi, "grad_ratio_predicted": ratio, "grad_slope_predicted": slope}
