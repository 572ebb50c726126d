"""Published numbers beside the measured ones: one comparison for a run and for a config.

An experiment's ``reference:`` block in the config names a ``metric`` and, for some metrics,
published ``values`` matched to configs by their settings (e.g. ``{widths: "100-100", value:
95.87}``). :func:`compare` turns a config's statistics (gradsweep.stats, one row per config)
and the published value into the cells a table shows: measured, published, Δ and where the
published value lies against our interval. A single run is compared as a config of one seed
(:func:`annotate`), so runs and configs are compared the same way.

``CLAIM_METRICS`` are claims checked across an experiment's configs (gradsweep.claims).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gradsweep.formatting import (
    MISSING,
    fixed,
    format_text,
    interval_cell,
    norms_text,
    summary_cell,
)

# metric → the table's heading for it
METRICS = {
    "best_val_acc": "best val acc (%)",
    "test_acc": "test acc (%)",
    "test_error": "test error (%)",
    "probe_bias_norms_init": "‖∂C/∂b‖ per hidden layer at init",
    "bias_order": "layers in order (epochs)",
    "grad_ratio": "verdict",
    "dead_frac": "dead units at end (%)",
    # claims checked across an experiment's configs (gradsweep.claims), not per config
    "bn_speed": "batch norm: accuracy sooner, stable inputs",
    "remedies": "remedies vs plain SGD",
    "trainable_depth": "trainable where L ≲ 6 ξ_c",
    "isometry_speed": "orthogonal vs Gaussian at χ₁ = 1",
}
CLAIM_METRICS = ("bn_speed", "remedies", "trainable_depth", "isometry_speed")
ACCURACY_METRICS = ("best_val_acc", "test_acc", "test_error")


def matches(row: Mapping[str, Any] | pd.Series, entry: Mapping[str, Any]) -> bool:
    """Does a run or config have every setting the reference entry names?"""
    return all(str(row.get(k)) == str(v) for k, v in entry.items() if k != "value")


def published(row: Mapping[str, Any] | pd.Series, block: Mapping[str, Any] | None) -> Any:
    """The ``value`` of the first entry of a ``reference:`` block that matches ``row``
    (None: no published value for it)."""
    entries = (block or {}).get("values", []) or []
    return next((e.get("value") for e in entries if matches(row, e)), None)


def position(value: float, lo: float, hi: float, low: float = np.nan, high: float = np.nan) -> str:
    """Where a published value lies relative to our interval [lo, hi]: inside / above /
    below; without an interval (fewer than 3 seeds), relative to the seeds' range
    [low, high] when there is one."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        if not (np.isfinite(low) and np.isfinite(high)) or low == high:
            return "n = 1, no interval"
        return f"{position(value, low, high)} the range (n = 2, no interval)"
    if value > hi:
        return "above"
    if value < lo:
        return "below"
    return "inside"


def _accuracy(stats: Mapping[str, Any] | pd.Series, metric: str) -> dict[str, float]:
    """A config's accuracy statistics in % (an error: 100 − accuracy, bounds swapped)."""
    key = "test_acc" if metric == "test_error" else metric
    names = ("mean", "lo", "hi", "min", "max")
    v = {s: 100 * float(stats.get(f"{key}_{s}", np.nan)) for s in names}
    if metric == "test_error":
        v = {"mean": 100 - v["mean"], "lo": 100 - v["hi"], "hi": 100 - v["lo"],
             "min": 100 - v["max"], "max": 100 - v["min"]}  # fmt: skip
    return v


def _learned_note(stats: Mapping[str, Any] | pd.Series) -> str:
    """`` (the 4 seeds that learned)`` where a config's statistics leave seeds out."""
    n, basis = stats.get("n"), stats.get("n_basis")
    if n is None or basis is None or pd.isna(n) or pd.isna(basis) or int(basis) >= int(n):
        return ""
    return f" ({int(basis)} seed{'s' if int(basis) != 1 else ''} that learned)"


def compare(stats: Mapping[str, Any] | pd.Series, metric: str, ref: Any) -> tuple[str, ...]:
    """(measured, published, Δ, where the published value lies) for one config's statistics
    (columns of gradsweep.stats.config_summary and stats.reference_statistics)."""
    if metric in ACCURACY_METRICS:
        v = _accuracy(stats, metric)
        measured = summary_cell(v["mean"], v["lo"], v["hi"], v["min"], v["max"], fixed)
        if ref is None:
            return measured, MISSING, MISSING, MISSING
        where = position(ref, v["lo"], v["hi"], v["min"], v["max"]) + _learned_note(stats)
        return measured, fixed(float(ref)), f"{v['mean'] - float(ref):+.2f}", where
    if metric == "probe_bias_norms_init":
        measured = stats.get("norms_gmean") or []
        if ref is None:
            return norms_text(measured), MISSING, MISSING, MISSING
        ratios = " ".join(f"×{m / r:.2f}" for m, r in zip(measured, ref, strict=False))
        bounds = zip(ref, stats.get("norms_lo") or [], stats.get("norms_hi") or [], strict=False)
        where = " / ".join(position(r, lo, hi) for r, lo, hi in bounds)
        return norms_text(measured), norms_text(ref), ratios, where or MISSING
    if metric == "bias_order":
        frac = float(stats.get("bias_order_frac_mean", np.nan))
        shown = f"{100 * frac:.0f} % of epochs" if np.isfinite(frac) else MISSING
        verdict = "holds" if frac == 1 else ("mostly" if frac >= 0.5 else "fails")
        return shown, "1 < 2 < 3 < 4", verdict, MISSING
    if metric == "dead_frac":
        measured = interval_cell(
            *(stats.get(f"dead_frac_final_{s}") for s in ("mean", "lo", "hi")),
            lambda x: fixed(100 * x, 1),
        )
        return measured, MISSING, MISSING, MISSING
    return format_text(stats.get("verdicts")), MISSING, MISSING, MISSING


def single_run(run: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """One run's numbers as the statistics of a config of one seed (no interval)."""
    norms = run.get("probe_bias_norms_init")
    stats: dict[str, Any] = {
        "norms_gmean": list(norms) if norms is not None else [],
        "verdicts": run.get("verdict", MISSING),
    }
    for column in ("best_val_acc", "test_acc", "bias_order_frac", "dead_frac_final"):
        value = run.get(column, np.nan)
        stats |= {f"{column}_mean": value, f"{column}_lo": np.nan, f"{column}_hi": np.nan}
    return stats


def annotate(runs: pd.DataFrame, references: Mapping[str, Mapping | None]) -> pd.DataFrame:
    """Add ``measured``, ``reference`` and ``delta`` cells per run from each experiment's
    ``reference:`` block of the config (metric, and values matched on the run's settings)."""
    runs = runs.copy()
    cells = []
    for _, row in runs.iterrows():
        block = references.get(row["experiment"]) or {}
        metric = block.get("metric")
        if metric is None:
            cells.append(("", "", ""))
            continue
        cells.append(compare(single_run(row), metric, published(row, block))[:3])
    runs["measured"], runs["reference"], runs["delta"] = (
        (list(c) for c in zip(*cells, strict=True)) if cells else ([], [], [])
    )
    return runs
