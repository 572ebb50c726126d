"""Verdicts from the gradient ratio, and published numbers beside the measured ones.

The verdict of a run looks at r = ‖∂C/∂b‖ of the last hidden layer ÷ that of the first, on
the probe set, at initialisation (epoch 0) and after every epoch. Each value is classed:

- ``vanishing``: r > 10 — the first layer learns over ten times slower than the last;
- ``exploding``: r < 1/10 — the first layer's gradient is over ten times the last's;
- ``healthy``: 1/10 ≤ r ≤ 10 (a single hidden layer has r = 1);
- ``diverged`` (whole run): the loss, a gradient or a weight became NaN or infinite.

The run's *escape epoch* is the first epoch from which r stays inside [1/10, 10] to the end
(:func:`gradsweep.stats.escape_epoch`). The verdict states both phases, e.g.
``vanishing until epoch 5 → healthy`` (r > 10 at initialisation, inside the band from epoch 5
on), ``healthy`` (inside the band throughout), ``vanishing throughout`` or
``healthy → vanishing from epoch 7``.
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


def matches(row: pd.Series, entry: dict[str, Any]) -> bool:
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
        entry = next((e for e in block.get("values", []) if matches(row, e)), None)
        cells.append(compare(row, metric, entry["value"] if entry else None))
    runs["measured"], runs["reference"], runs["delta"] = (
        (list(c) for c in zip(*cells, strict=True)) if cells else ([], [], [])
    )
    return runs
