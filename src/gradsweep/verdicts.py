"""Per-run verdicts: is a run's gradient vanishing, exploding or healthy, and did it learn.

The verdict of a run looks at r = ‖∂C/∂b‖ of the last hidden layer ÷ that of the first, on
the probe set, at initialisation (epoch 0) and after every epoch. Each value is classed:

- ``vanishing``: r > 10 — the first layer learns over ten times slower than the last;
- ``exploding``: r < 1/10 — the first layer's gradient is over ten times the last's;
- ``healthy``: 1/10 ≤ r ≤ 10;
- ``diverged`` (whole run): the loss, a gradient or a weight became NaN or infinite.

A net with a single hidden layer has no ratio (its first hidden layer is its last, r = 1
says nothing), so no verdict either: ``n/a: one hidden layer`` (``ONE_LAYER``).

The run's *escape epoch* is the first epoch from which r stays inside [1/10, 10] to the end
(:func:`escape_epoch`). The verdict states both phases, e.g. ``vanishing until epoch 5 →
healthy`` (r > 10 at initialisation, inside the band from epoch 5 on), ``healthy`` (inside
the band throughout), ``vanishing throughout`` or ``healthy → vanishing from epoch 7``.

A run *never learned* when its best validation accuracy stayed below twice chance.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

VANISHING_RATIO = 10.0
EXPLODING_RATIO = 0.1
HEALTHY_BAND = (EXPLODING_RATIO, VANISHING_RATIO)  # gradient ratio inside it: healthy
CHANCE = 0.1  # every dataset here has 10 classes
NEVER_LEARNED_BELOW = 2 * CHANCE  # best val acc below this: the run never learned
# edge_of_chaos (Schoenholz et al. 2017): a config trained when the mean over its seeds of the
# best training-set accuracy reaches this, the same twice chance as never learned (a net stuck
# at the edge of its phase sits at chance, 10 %; one that trains at all passes 20 % early)
TRAINED_AT = NEVER_LEARNED_BELOW
# the share of configs on the side L ≤ 6 ξ_c predicts for "holds" and for "partly holds"
TRAINABLE_HOLDS, TRAINABLE_PARTLY = 0.9, 0.7
# isometry (Pennington et al. 2017): the training accuracy whose first step is compared. On
# Fashion-MNIST, 50 × 100 tanh nets at χ₁ = 1 passed 50 % within their first 125 steps with
# either init, so 50 % could not tell them apart; 70 % took 125 (orthogonal) vs 250 steps
ISOMETRY_TARGET = 0.7
ONE_LAYER = "n/a: one hidden layer"  # the verdict (and ratio) of a net with one hidden layer


def has_ratio(depth: object) -> bool:
    """Does a net of ``depth`` hidden layers have a last ÷ first hidden layer ratio?"""
    return pd.notna(depth) and int(depth) > 1  # type: ignore[call-overload]


def verdict(status: str, ratio: float) -> str:
    if status == "diverged":
        return "diverged"
    if ratio is None or not np.isfinite(ratio):
        # a first layer with zero gradient (all dead) is the extreme of vanishing
        return "vanishing" if ratio == math.inf else "unknown"
    if ratio > VANISHING_RATIO:
        return "vanishing"
    if ratio < EXPLODING_RATIO:
        return "exploding"
    return "healthy"


def escape_epoch(ratios: pd.Series, band: tuple[float, float] = HEALTHY_BAND) -> float:
    """First epoch from which the ratio stays inside ``band`` to the end (NaN: never).

    ``ratios`` is indexed by epoch (0 = initialisation). A run healthy from the start
    escapes at 0; one that leaves the band again later escapes only after its last exit.
    """
    r = pd.to_numeric(ratios, errors="coerce").sort_index()
    if r.empty:
        return np.nan
    healthy = ((r >= band[0]) & (r <= band[1])).to_numpy()
    if not healthy[-1]:
        return np.nan
    bad = np.flatnonzero(~healthy)
    first = bad[-1] + 1 if len(bad) else 0
    return float(r.index[first])


def dynamic_verdict(status: str, ratios: pd.Series, escape: float) -> str:
    """Verdict at initialisation and over training (module docstring) from the ratio per
    epoch (index = epoch, 0 = initialisation) and the run's escape epoch."""
    if status == "diverged":
        return "diverged"
    r = pd.to_numeric(ratios, errors="coerce").sort_index()
    if r.empty:
        return "unknown"
    classes = [verdict("ok", float(x)) for x in r]
    first, last = classes[0], classes[-1]
    if np.isfinite(escape):
        if escape <= r.index[0]:
            return "healthy"
        if first != "healthy":
            return f"{first} until epoch {int(escape)} → healthy"
        before = classes[list(r.index).index(escape) - 1]
        return f"healthy → {before} → healthy from epoch {int(escape)}"
    if all(c == first for c in classes):
        return f"{first} throughout"
    since = len(classes) - 1
    while since > 0 and classes[since - 1] == last:
        since -= 1
    return f"{first} → {last} from epoch {int(r.index[since])}"


def never_learned(best_val_acc: pd.Series) -> pd.Series:
    """Which runs never learned (a missing accuracy counts as never learned)."""
    return ~(pd.to_numeric(best_val_acc, errors="coerce") >= NEVER_LEARNED_BELOW)
