"""Replicate statistics: runs that differ only in ``seed`` are one *config*.

For every config and metric of ``runs.parquet`` (see docs/outputs.md):

- accuracies: n, the mean with a 95 % Student-t interval (mean ± t₀.₉₇₅,ₙ₋₁ · s / √n), the
  median and the min–max range;
- gradient ratios (last ÷ first hidden layer): the *geometric* mean with a 95 % Student-t
  interval computed on log₁₀(ratio) and transformed back, the median and the min–max range
  (ratios spread over decades, so an arithmetic mean would be one seed's number);
- how many of the n runs never learned (best validation accuracy below twice chance);
- the spread of the per-run *escape epoch* (see :func:`gradsweep.verdicts.escape_epoch`).

With n = 1 (or one finite value) there is no interval: lo and hi are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from gradsweep.settings import config_columns
from gradsweep.verdicts import never_learned

LEVEL = 0.95
ACCURACY_METRICS = ["best_val_acc", "test_acc"]
RATIO_METRICS = ["grad_ratio_init", "grad_ratio_final", "update_ratio_init", "update_ratio_final"]
METHOD = (
    f"mean ± {LEVEL:.0%} Student-t interval (t · s/√n, n − 1 degrees of freedom) for "
    f"accuracies; geometric mean with a {LEVEL:.0%} Student-t interval on log₁₀(ratio), "
    "transformed back, for gradient ratios"
)


def finite(values: Sequence[float] | pd.Series | np.ndarray) -> np.ndarray:
    v = np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)
    return v[np.isfinite(v)]


def mean_interval(values: Sequence[float], level: float = LEVEL) -> tuple[int, float, float, float]:
    """(n, mean, lo, hi) of the finite values: Student-t interval; lo = hi = NaN for n < 2."""
    v = finite(values)
    n = len(v)
    if n == 0:
        return 0, np.nan, np.nan, np.nan
    mean = float(v.mean())
    if n < 2:
        return n, mean, np.nan, np.nan
    half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return n, mean, mean - half, mean + half


def geometric_interval(
    values: Sequence[float], level: float = LEVEL
) -> tuple[int, float, float, float]:
    """(n, geometric mean, lo, hi) of the finite positive values: t-interval on log scale."""
    v = finite(values)
    n, m, lo, hi = mean_interval(np.log10(v[v > 0]), level)
    return n, 10**m, 10**lo, 10**hi


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


def summarize_group(group: pd.DataFrame) -> dict:
    """One config's statistics (see the module docstring) from its runs' rows."""
    out: dict = {"n": len(group), "seeds": ",".join(str(int(s)) for s in sorted(group["seed"]))}
    for m in ACCURACY_METRICS:
        if m in group:
            v = finite(group[m])
            out.update(_stats(m, v, mean_interval(v)))
    for m in RATIO_METRICS:
        if m in group:
            v = finite(group[m])
            out.update(_stats(m, v, geometric_interval(v)))
    if "best_val_acc" in group:
        out["n_never_learned"] = int(never_learned(group["best_val_acc"]).sum())
    if "status" in group:
        out["n_diverged"] = int((group["status"] == "diverged").sum())
    if "escape_epoch" in group:
        esc = pd.to_numeric(group["escape_epoch"], errors="coerce")
        out["n_never_escaped"] = int(esc.isna().sum())
        out["escape_epoch_median"] = float(esc.median()) if esc.notna().any() else np.nan
        out["escape_epoch_min"] = float(esc.min()) if esc.notna().any() else np.nan
        out["escape_epoch_max"] = float(esc.max()) if esc.notna().any() else np.nan
    if "verdict" in group:
        counts = group["verdict"].astype(str).value_counts()
        out["verdicts"] = "; ".join(f"{n} × {v}" if n > 1 else v for v, n in counts.items())
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
    """``summary`` plus the per-config statistics some references need (gradsweep.reference):
    mean intervals of the layer-order fraction and of the dead-unit fraction, and per hidden
    layer the geometric mean and interval of the probe bias-gradient norm at initialisation."""
    extra = []
    for cid in summary["config_id"]:
        group = runs[runs["config_id"] == cid]
        row: dict[str, Any] = {"config_id": cid}
        for col in ("bias_order_frac", "dead_frac_final"):
            if col in group:
                _, row[f"{col}_mean"], row[f"{col}_lo"], row[f"{col}_hi"] = mean_interval(
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
