"""Replicate statistics: runs that differ only in ``seed`` are one *config*.

For every config and metric of ``runs.parquet`` (see docs/outputs.md):

- accuracies: n, the mean with a 95 % Student-t interval (mean ± t₀.₉₇₅,ₙ₋₁ · s / √n), the
  median and the min–max range;
- gradient ratios (last ÷ first hidden layer): the *geometric* mean with a 95 % Student-t
  interval computed on log₁₀(ratio) and transformed back, the median and the min–max range
  (ratios spread over decades, so an arithmetic mean would be one seed's number);
- how many of the n runs never learned (best validation accuracy below twice chance);
- the spread of the per-run *escape epoch* (see :func:`escape_epoch`).

With n = 1 (or one finite value) there is no interval: lo and hi are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LEVEL = 0.95
CHANCE = 0.1  # every dataset here has 10 classes
NEVER_LEARNED_BELOW = 2 * CHANCE  # best val acc below this: the run never learned
HEALTHY_BAND = (0.1, 10.0)  # gradient ratio last ÷ first hidden layer inside it: healthy

# Every setting of a run except its seed (runs.parquet columns): together with the experiment
# they identify a config.
SETTINGS = [
    "dataset",
    "depth",
    "widths",
    "activation",
    "init",
    "epochs",
    "learning_rate",
    "batch_size",
    "l2",
    "loss",
    "bias_init",
    "weight_scale",
    "train_subset",
    "probe_size",
    "trace_every",
    # the remedies (issue 15); runs from before them have the defaults (config.REMEDY_DEFAULTS)
    "optimizer",
    "nesterov",
    "normalization",
    "residual",
]
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
    from scipy import stats  # here: the workflow imports this module when it is parsed

    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return n, mean, mean - half, mean + half


def geometric_interval(
    values: Sequence[float], level: float = LEVEL
) -> tuple[int, float, float, float]:
    """(n, geometric mean, lo, hi) of the finite positive values: t-interval on log scale."""
    v = finite(values)
    n, m, lo, hi = mean_interval(np.log10(v[v > 0]), level)
    return n, 10**m, 10**lo, 10**hi


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


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns that identify a config: the experiment and every setting but the seed."""
    return ["experiment", *[c for c in SETTINGS if c in runs.columns]]


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
        acc = pd.to_numeric(group["best_val_acc"], errors="coerce")
        out["n_never_learned"] = int((~(acc >= NEVER_LEARNED_BELOW)).sum())  # NaN counts
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


def with_config_id(runs: pd.DataFrame) -> pd.DataFrame:
    """runs with a ``config_id`` column (kept if present, else numbered per config)."""
    if "config_id" in runs or runs.empty:
        return runs
    ids = runs.groupby(config_columns(runs), dropna=False, sort=False).ngroup()
    return runs.assign(config_id=ids.astype(str))


def config_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config: its settings, ``config_id``, n, seeds and the statistics."""
    runs = with_config_id(runs)
    keys = config_columns(runs)
    rows = []
    for key, group in runs.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, key, strict=True))
        if "config_id" in group:
            row["config_id"] = group["config_id"].iloc[0]
        row.update(summarize_group(group))
        rows.append(row)
    return pd.DataFrame(rows)


def position(value: float, lo: float, hi: float) -> str:
    """Where a published value lies relative to our interval: inside / above / below."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n = 1, no interval"
    if value > hi:
        return "above"
    if value < lo:
        return "below"
    return "inside"
