"""Replicate statistics: runs that differ only in ``seed`` are one *config*.

What a config's seeds are summarised by, for every metric of ``runs.parquet`` (see
docs/outputs.md), and why:

- **Never learned** (best validation accuracy below twice chance, gradsweep.verdicts): the
  count k of n seeds, with a 95 % **Wilson score interval** for the fraction. Training a seed
  is a Bernoulli trial (it learns or it does not); at n = 3–10 the Wald interval
  k/n ± z·√(k/n·(1 − k/n)/n) collapses to [0, 0] at k = 0 and leaves [0, 1], while Wilson's
  stays inside [0, 1] and keeps close to its nominal coverage (Brown, Cai & DasGupta 2001).
- **Which seeds the rest describes**: a deep sigmoid net is a lottery, most seeds learn and
  some never do, and a mean over both is neither (79.01 [31.73, 126.29] for seeds at 96 % and
  one at 11 %). So where some but not all seeds learned, every other statistic of the config
  (accuracies, ratios, escape epoch) is over **the seeds that learned**, and a published
  number is compared with them; where none learned, over all seeds.
- **Accuracies** (in [0, 1]) over those seeds: with n ≥ 3 the mean with a 95 % Student-t
  interval (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n) **intersected with [0, 1]**. The mean of a seed's
  accuracy over seeds is what the t-interval is for, and it is near-normal once the lottery's
  losers are set apart; cutting it at the bounds the mean cannot cross keeps its coverage
  (a true mean inside the interval is inside the cut one). With n = 2 a t-interval has one
  degree of freedom (t₀.₉₇₅,₁ = 12.7, ± 9 times the seeds' difference): valid but useless, so
  below n = 3 (``MIN_INTERVAL_N``) there is **no interval, only the range** (min–max); with
  n = 1 a single number. Not a bootstrap: with 3–10 seeds a percentile bootstrap cannot
  reach beyond the observed range and undercovers; not Wilson: a seed's accuracy over
  thousands of test images is not one Bernoulli trial, its spread is the seed-to-seed one.
- **Gradient and update ratios** (> 0, spread over decades): the *geometric* mean with a 95 %
  Student-t interval on log₁₀(ratio), transformed back, so both bounds are > 0; the same
  n ≥ 3 rule. A net with one hidden layer has no ratio (its first hidden layer is its last):
  null, never 1.
- Always the median and the min–max range, and the spread of the per-run *escape epoch*
  (see :func:`gradsweep.verdicts.escape_epoch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from gradsweep.settings import config_columns
from gradsweep.verdicts import ONE_LAYER, never_learned

LEVEL = 0.95
MIN_INTERVAL_N = 3  # below it: no interval, the range only
ACCURACY_METRICS = ["best_val_acc", "test_acc"]
RATIO_METRICS = ["grad_ratio_init", "grad_ratio_final", "update_ratio_init", "update_ratio_final"]
UNIT = (0.0, 1.0)  # what an accuracy or a fraction can take
METHOD = (
    f"never learned: k of n seeds with a {LEVEL:.0%} Wilson score interval for the fraction; "
    "where some seeds never learned, the other statistics are over the seeds that learned. "
    f"Accuracies: mean with a {LEVEL:.0%} Student-t interval (t · s/√n, n − 1 degrees of "
    "freedom) cut to [0, 100] %; gradient ratios: geometric mean with a "
    f"{LEVEL:.0%} Student-t interval on log₁₀(ratio), transformed back (always > 0). "
    f"Below {MIN_INTERVAL_N} seeds no interval: 2 seeds give the mean and their range "
    "(min–max), 1 seed its number"
)


def finite(values: Sequence[float] | pd.Series | np.ndarray) -> np.ndarray:
    v = np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)
    return v[np.isfinite(v)]


def mean_interval(
    values: Sequence[float],
    level: float = LEVEL,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    min_n: int = 2,
) -> tuple[int, float, float, float]:
    """(n, mean, lo, hi) of the finite values: the Student-t interval intersected with
    ``bounds`` (what the mean can take); lo = hi = NaN for n < ``min_n`` (at least 2)."""
    v = finite(values)
    n = len(v)
    if n == 0:
        return 0, np.nan, np.nan, np.nan
    mean = float(v.mean())
    if n < max(2, min_n):
        return n, mean, np.nan, np.nan
    half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return n, mean, max(mean - half, bounds[0]), min(mean + half, bounds[1])


def bounded_interval(
    values: Sequence[float], bounds: tuple[float, float] = UNIT, level: float = LEVEL
) -> tuple[int, float, float, float]:
    """(n, mean, lo, hi) of values bounded by ``bounds`` (an accuracy, a fraction): the
    t-interval cut to ``bounds``, none below MIN_INTERVAL_N values (module docstring)."""
    return mean_interval(values, level, bounds, MIN_INTERVAL_N)


def geometric_interval(
    values: Sequence[float], level: float = LEVEL, min_n: int = MIN_INTERVAL_N
) -> tuple[int, float, float, float]:
    """(n, geometric mean, lo, hi) of the finite positive values: t-interval on log scale,
    none below ``min_n`` values."""
    v = finite(values)
    n, m, lo, hi = mean_interval(np.log10(v[v > 0]), level, min_n=min_n)
    return n, 10**m, 10**lo, 10**hi


def wilson_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a binomial fraction k/n (NaN, NaN for n = 0)."""
    if n <= 0:
        return np.nan, np.nan
    z = float(scipy_stats.norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def _stats(prefix: str, v: np.ndarray, interval: tuple[int, float, float, float]) -> dict:
    n, mean, lo, hi = interval
    return {
        f"{prefix}_n": n,
        f"{prefix}_mean": mean,
        f"{prefix}_lo": lo,
        f"{prefix}_hi": hi,
        f"{prefix}_median": float(np.median(v)) if len(v) else np.nan,
        f"{prefix}_min": float(v.min()) if len(v) else np.nan,
        f"{prefix}_max": float(v.max()) if len(v) else np.nan,
    }


def learned_basis(group: pd.DataFrame) -> pd.DataFrame:
    """The seeds a config's statistics describe: those that learned where some but not all
    did, else all of them (module docstring)."""
    if "best_val_acc" not in group:
        return group
    learned = ~never_learned(group["best_val_acc"])
    return group[learned] if 0 < int(learned.sum()) < len(group) else group


def _verdicts(group: pd.DataFrame) -> str:
    """``4 × healthy; vanishing throughout``: the runs' verdicts with their counts."""
    counts = group["verdict"].astype(str).value_counts()
    return "; ".join(f"{n} × {v}" if n > 1 else v for v, n in counts.items())


def _escape(basis: pd.DataFrame) -> dict:
    esc = pd.to_numeric(basis["escape_epoch"], errors="coerce")
    if "depth" in basis:  # one hidden layer: no ratio, so no escape either
        esc = esc[pd.to_numeric(basis["depth"], errors="coerce") != 1]
    any_ = esc.notna().any()
    return {
        "n_never_escaped": int(esc.isna().sum()),
        "escape_epoch_median": float(esc.median()) if any_ else np.nan,
        "escape_epoch_min": float(esc.min()) if any_ else np.nan,
        "escape_epoch_max": float(esc.max()) if any_ else np.nan,
    }


def summarize_group(group: pd.DataFrame) -> dict:
    """One config's statistics (see the module docstring) from its runs' rows: over the
    ``n_basis`` seeds of :func:`learned_basis`; ``n_never_learned`` and its Wilson interval
    (``never_learned_lo``/``_hi``) and ``verdicts`` over all n."""
    out: dict = {"n": len(group), "seeds": ",".join(str(int(s)) for s in sorted(group["seed"]))}
    basis = learned_basis(group)
    out["n_basis"] = len(basis)
    out["one_layer"] = bool("depth" in group and (group["depth"] == 1).all())
    for m in ACCURACY_METRICS:
        if m in basis:
            v = finite(basis[m])
            out.update(_stats(m, v, bounded_interval(v)))
    for m in RATIO_METRICS:
        if m in basis:
            v = finite(basis[m])
            out.update(_stats(m, v, geometric_interval(v)))
    if "best_val_acc" in group:
        k = int(never_learned(group["best_val_acc"]).sum())
        out["n_never_learned"] = k
        out["never_learned_lo"], out["never_learned_hi"] = wilson_interval(k, len(group))
    for col in ("grad_ratio_predicted", "grad_slope_predicted"):  # the same for every seed
        if col in group:
            out[col] = group[col].iloc[0]
    if "grad_slope_init" in basis:  # a difference of logs: its plain mean over the seeds
        slopes = finite(basis["grad_slope_init"])
        out["grad_slope_init_mean"] = float(np.mean(slopes)) if len(slopes) else np.nan
    if "status" in group:
        out["n_diverged"] = int((group["status"] == "diverged").sum())
    if "escape_epoch" in basis:
        out.update(_escape(basis))
    if "verdict" in group:
        out["verdicts"] = ONE_LAYER if out["one_layer"] else _verdicts(basis)
        if len(basis) < len(group):
            out["verdicts"] += "; never learned: " + _verdicts(group.drop(basis.index))
    return out


def config_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config: its settings, ``config_id``, n, seeds and the statistics."""
    keys = config_columns(runs)
    rows = []
    for key, group in runs.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, key, strict=True))
        if "config_id" in group:
            row["config_id"] = group["config_id"].iloc[0]
        row.update(summarize_group(group))
        rows.append(row)
    return pd.DataFrame(rows)


def reference_statistics(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` plus the per-config statistics some references need (gradsweep.reference),
    over the same seeds (:func:`learned_basis`): mean intervals of the layer-order fraction
    and of the dead-unit fraction, and per hidden layer the geometric mean and interval of the
    probe bias-gradient norm at initialisation."""
    extra = []
    for cid in summary["config_id"]:
        group = learned_basis(runs[runs["config_id"] == cid])
        row: dict[str, Any] = {"config_id": cid}
        for col in ("bias_order_frac", "dead_frac_final"):
            if col in group:
                _, row[f"{col}_mean"], row[f"{col}_lo"], row[f"{col}_hi"] = bounded_interval(
                    group[col]
                )
        if "probe_bias_norms_init" in group:
            layers = [list(v) for v in group["probe_bias_norms_init"] if v is not None]
            depth = max((len(v) for v in layers), default=0)
            per_layer = [
                geometric_interval([v[i] for v in layers if len(v) > i]) for i in range(depth)
            ]
            row["norms_gmean"] = [p[1] for p in per_layer]
            row["norms_lo"] = [p[2] for p in per_layer]
            row["norms_hi"] = [p[3] for p in per_layer]
        extra.append(row)
    return summary.merge(pd.DataFrame(extra), on="config_id", how="left")
