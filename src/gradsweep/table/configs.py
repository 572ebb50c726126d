"""The per-config table of results.md: one row per config (its seeds summarised), with the
published number beside it where the experiment reproduces one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from gradsweep.formatting import (
    MISSING,
    format_int,
    format_number,
    format_percent,
    format_ratio,
    interval_cell,
    spread_cell,
)
from gradsweep.reference import CLAIM_METRICS, METRICS, compare, published
from gradsweep.settings import REMEDIES, VARYING
from gradsweep.stats import config_summary, reference_statistics
from gradsweep.table.common import (
    SHAPE_COLUMNS,
    Column,
    field,
    insert_after,
    render,
    sort_runs,
    varies,
    varying_columns,
)


def _stat(metric: str, kind: str, fmt: Callable[[Any], str]) -> Callable[[pd.Series], str]:
    """A cell of one metric's statistics: ``interval`` (mean [lo, hi]) or ``spread`` (median
    (min–max))."""
    if kind == "interval":
        return lambda r: interval_cell(
            r.get(f"{metric}_mean"), r.get(f"{metric}_lo"), r.get(f"{metric}_hi"), fmt
        )
    return lambda r: spread_cell(
        r.get(f"{metric}_median"), r.get(f"{metric}_min"), r.get(f"{metric}_max"), fmt
    )


def _escape_cell(row: pd.Series) -> str:
    med, lo, hi = row.get("escape_epoch_median"), row.get("escape_epoch_min"), None
    hi = row.get("escape_epoch_max")
    never = int(row.get("n_never_escaped", 0) or 0)
    text = spread_cell(med, lo, hi, format_number) if med is not None and pd.notna(med) else ""
    if never:
        text = f"{text}; {never} never" if text else "never"
    return text or MISSING


def _geo_spread(row: pd.Series, metric: str) -> str:
    mean = row.get(f"{metric}_mean")
    if mean is None or pd.isna(mean):
        return MISSING
    lo, hi = row.get(f"{metric}_min"), row.get(f"{metric}_max")
    spread = f" ({format_ratio(lo)}–{format_ratio(hi)})" if lo != hi else ""
    return format_ratio(mean) + spread


CONFIG_COLUMNS: list[Column] = [
    *SHAPE_COLUMNS,
    Column("epochs", field("epochs", format_int)),
    Column("n", field("n", format_int)),
    Column("best val acc (%) mean [95 % CI]", _stat("best_val_acc", "interval", format_percent)),
    Column("median (min–max)", _stat("best_val_acc", "spread", format_percent)),
    Column(
        "never learned", lambda r: f"{format_int(r.get('n_never_learned'))}/{format_int(r['n'])}"
    ),
    Column("test acc (%) mean [95 % CI]", _stat("test_acc", "interval", format_percent)),
    Column("median (min–max)", _stat("test_acc", "spread", format_percent)),
    Column(
        "grad ratio at init: geo. mean [95 % CI]",
        _stat("grad_ratio_init", "interval", format_ratio),
    ),
    Column("median (min–max)", _stat("grad_ratio_init", "spread", format_ratio)),
    Column(
        "grad ratio at end: geo. mean [95 % CI]",
        _stat("grad_ratio_final", "interval", format_ratio),
    ),
    Column("median (min–max)", _stat("grad_ratio_final", "spread", format_ratio)),
    Column("escape epoch median (min–max)", _escape_cell),
    Column("verdicts", field("verdicts"), "left"),
]
# Update ratios (issue 15) as columns before "escape epoch" where an experiment varies a remedy
# or checks the remedies claim: elsewhere they would widen every table by two columns.
UPDATE_COLUMNS: list[Column] = [
    Column(
        "update ratio epoch 1: geo. mean (min–max)", lambda r: _geo_spread(r, "update_ratio_init")
    ),
    Column(
        "update ratio last epoch: geo. mean (min–max)",
        lambda r: _geo_spread(r, "update_ratio_final"),
    ),
]


def config_columns_for(summary: pd.DataFrame, updates: bool = False) -> list[Column]:
    """The per-config columns, plus (after "init") every setting that varies between the
    configs, and the update ratios where asked or where a remedy setting varies."""
    cols = list(CONFIG_COLUMNS)
    if updates or varies(summary, REMEDIES):
        at = next(i for i, c in enumerate(cols) if c.header.startswith("escape epoch"))
        cols[at:at] = UPDATE_COLUMNS
    return insert_after(cols, "init", varying_columns(summary, VARYING))


def reference_columns(metric: str, block: Mapping[str, Any]) -> list[Column]:
    """Measured (unless the table shows it already), published, Δ and where the published
    value lies, for an experiment whose reference names a per-config ``metric``."""

    def cell(i: int) -> Callable[[pd.Series], str]:
        return lambda row: compare(row, metric, published(row, block))[i]

    measured = [] if metric in ("best_val_acc", "test_acc") else [
        Column(f"{METRICS[metric]} measured", cell(0))
    ]  # fmt: skip
    delta = "measured ÷ published" if metric == "probe_bias_norms_init" else "Δ mean"
    return [
        *measured,
        Column("published", cell(1)),
        Column(delta, cell(2)),
        Column("published is", cell(3)),
    ]


def config_table(runs: pd.DataFrame, references: Mapping[str, Mapping | None] | None = None) -> str:
    """Per-config Markdown table of one experiment's runs."""
    summary = reference_statistics(runs, config_summary(runs))
    summary = sort_runs(summary.assign(seed=0, run=""))
    block = (references or {}).get(str(runs["experiment"].iloc[0])) or {}
    metric = block.get("metric")
    cols = config_columns_for(summary, updates=metric == "remedies")
    if metric and metric not in CLAIM_METRICS:  # claims: checked across configs, table.claims
        cols += reference_columns(metric, block)
    return render(summary, cols)
