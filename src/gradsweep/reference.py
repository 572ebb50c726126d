"""Verdicts from the gradient ratio, and published numbers beside the measured ones.

The verdict of a run looks at r = ‖∂C/∂b‖ of the last hidden layer ÷ that of the first, on
the probe set, taken as the median over all probe epochs (initialisation and after each
epoch), so one noisy epoch does not decide it:

- ``diverged``: the loss, a gradient or a weight became NaN or infinite;
- ``vanishing``: r > 10 — the first layer learns over ten times slower than the last;
- ``exploding``: r < 1/10 — the first layer's gradient is over ten times the last's;
- ``healthy``: anything between (a single hidden layer has r = 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

VANISHING_RATIO = 10.0
EXPLODING_RATIO = 0.1

# metric → (column header, runs.parquet field or how to compute the measured value)
METRICS = {
    "best_val_acc": "best val acc (%)",
    "test_acc": "test acc (%)",
    "test_error": "test error (%)",
    "probe_bias_norms_init": "‖∂C/∂b‖ per hidden layer at init",
    "bias_order": "layers in order (epochs)",
    "grad_ratio": "verdict",
    "dead_frac": "dead units at end (%)",
}


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


def _matches(row: pd.Series, entry: dict[str, Any]) -> bool:
    return all(str(row.get(k)) == str(v) for k, v in entry.items() if k != "value")


def _num(x: float, digits: int = 2) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _norms(values: list[float]) -> str:
    return " / ".join(f"{v:.3g}" for v in values) if len(values) else "—"


def compare(row: pd.Series, metric: str, ref: Any) -> tuple[str, str, str]:
    """(measured, reference, Δ) as table cells for one run."""
    if metric in ("best_val_acc", "test_acc", "test_error"):
        key = "test_acc" if metric == "test_error" else metric
        measured = 100 * float(row.get(key, np.nan))
        if metric == "test_error":
            measured = 100 - measured
        if ref is None:
            return _num(measured), "—", "—"
        return _num(measured), _num(float(ref)), f"{measured - float(ref):+.2f}"
    if metric == "probe_bias_norms_init":
        measured = list(row.get("probe_bias_norms_init", []))
        if ref is None:
            return _norms(measured), "—", "—"
        ratios = [m / r for m, r in zip(measured, ref, strict=False)]
        return _norms(measured), _norms(ref), " ".join(f"×{q:.2f}" for q in ratios)
    if metric == "bias_order":
        frac = float(row.get("bias_order_frac", np.nan))
        return (
            f"{100 * frac:.0f} % of epochs" if np.isfinite(frac) else "—",
            "1 < 2 < 3 < 4",
            "holds" if frac == 1 else ("mostly" if frac >= 0.5 else "fails"),
        )
    if metric == "dead_frac":
        return _num(100 * float(row.get("dead_frac_final", np.nan)), 1), "—", "—"
    return str(row.get("verdict", "—")), "—", "—"


def annotate(runs: pd.DataFrame, references: dict[str, dict | None]) -> pd.DataFrame:
    """Add ``measured``, ``reference`` and ``delta`` cells per run from each experiment's
    ``reference:`` block of the config (metric, and values matched on widths/activation/init)."""
    runs = runs.copy()
    cells = []
    for _, row in runs.iterrows():
        block = references.get(row["experiment"]) or {}
        metric = block.get("metric")
        if metric is None:
            cells.append(("", "", ""))
            continue
        entry = next((e for e in block.get("values", []) if _matches(row, e)), None)
        cells.append(compare(row, metric, entry["value"] if entry else None))
    runs["measured"], runs["reference"], runs["delta"] = (
        (list(c) for c in zip(*cells, strict=True)) if cells else ([], [], [])
    )
    return runs
