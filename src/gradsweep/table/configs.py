"""The per-config table of results.md: one row per config (its seeds summarised), with the
published number beside it where the experiment reproduces one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from gradsweep.formatting import (
    MISSING,
    fixed,
    format_int,
    format_number,
    format_percent,
    format_ratio,
    fraction_cell,
    spread_cell,
    summary_cell,
)
from gradsweep.reference import CLAIM_METRICS, METRICS, compare, published
from gradsweep.settings import REMEDIES, VARYING
from gradsweep.stats import MIN_INTERVAL_N, config_summary, reference_statistics
from gradsweep.table.common import (
    SHAPE_COLUMNS,
    Column,
    field,
    insert_after,
    ratio_cell,
    render,
    sort_runs,
    varies,
    varying_columns,
)
from gradsweep.verdicts import has_ratio


def _spread(metric: str, fmt: Callable[[Any], str]) -> Callable[[pd.Series], str]:
    """Median (min–max) of a metric over the seeds, where there are 3 or more (fewer: the
    summary cell shows them all)."""

    def cell(r: pd.Series) -> str:
        if (r.get(f"{metric}_n") or 0) < MIN_INTERVAL_N:
            return MISSING
        return spread_cell(r.get(f"{metric}_median"), r.get(f"{metric}_min"),
                           r.get(f"{metric}_max"), fmt)  # fmt: skip

    return cell


def _summary(metric: str, fmt: Callable[[Any], str]) -> Callable[[pd.Series], str]:
    """Mean [interval], mean (min–max) or one number, by the number of seeds (stats)."""
    names = ("mean", "lo", "hi", "min", "max")
    return lambda r: summary_cell(*(r.get(f"{metric}_{s}") for s in names), fmt)


def _escape_cell(row: pd.Series) -> str:
    med, lo, hi = row.get("escape_epoch_median"), row.get("escape_epoch_min"), None
    hi = row.get("escape_epoch_max")
    never = int(row.get("n_never_escaped", 0) or 0)
    text = spread_cell(med, lo, hi, format_number) if med is not None and pd.notna(med) else ""
    if never:
        text = f"{text}; {never} never" if text else "never"
    return text or MISSING


def _never_learned(row: pd.Series) -> str:
    return fraction_cell(row.get("n_never_learned"), row.get("n"), row.get("never_learned_lo"),
                         row.get("never_learned_hi"))  # fmt: skip


def _how(summary: pd.DataFrame, metric: str, mean: str) -> str:
    """What a metric's summary cells hold, for its header: by the most seeds any row has."""
    most = int(pd.to_numeric(summary.get(f"{metric}_n"), errors="coerce").max() or 0)
    if most >= MIN_INTERVAL_N:
        return f": {mean} [95 % CI]"
    return f": {mean} (min–max)" if most == 2 else ""


def _metric_columns(
    summary: pd.DataFrame, metric: str, label: str, fmt: Callable[[Any], str], mean: str
) -> list[Column]:
    """A metric's summary column, and its median (min–max) where any config has 3+ seeds."""
    cells = [_summary(metric, fmt), _spread(metric, fmt)]
    if metric.startswith(("grad_ratio", "update_ratio")):  # one hidden layer: no ratio
        cells = [ratio_cell(c) for c in cells]
    cols = [Column(label + _how(summary, metric, mean), cells[0])]
    most = pd.to_numeric(summary.get(f"{metric}_n"), errors="coerce").max()
    if most >= MIN_INTERVAL_N:
        cols.append(Column("median (min–max)", cells[1]))
    return cols


def _geo_spread(row: pd.Series, metric: str) -> str:
    mean = row.get(f"{metric}_mean")
    if mean is None or pd.isna(mean):
        return MISSING
    lo, hi = row.get(f"{metric}_min"), row.get(f"{metric}_max")
    spread = f" ({format_ratio(lo)}–{format_ratio(hi)})" if lo != hi else ""
    return format_ratio(mean) + spread


PREDICTED = Column(
    "predicted ratio at init (mean field)",
    lambda r: "n/a" if pd.isna(r.get("grad_ratio_predicted")) else format_ratio(
        r.get("grad_ratio_predicted")),
)  # fmt: skip


def _slope_cell(row: pd.Series) -> str:
    """Measured mean slope over the seeds (predicted): ``-1.53 (-1.58)``; n/a for one layer."""
    if not has_ratio(row.get("depth", 2)):
        return "n/a"
    measured, predicted = row.get("grad_slope_init_mean"), row.get("grad_slope_predicted")
    text = MISSING if measured is None or pd.isna(measured) else fixed(measured)
    return f"{text} ({'n/a' if predicted is None or pd.isna(predicted) else fixed(predicted)})"


SLOPE = Column("per-layer slope of ln per-image grad at init (predicted)", _slope_cell)


def _prediction_columns(summary: pd.DataFrame) -> list[Column]:
    """The mean-field ratio and slope (gradsweep.theory) where some config of the experiment
    has one; "n/a" in the rows where the theory does not apply."""
    if "grad_ratio_predicted" not in summary:
        return []
    predicted = pd.to_numeric(summary["grad_ratio_predicted"], errors="coerce")
    if not predicted.notna().any():
        return []
    return [PREDICTED, SLOPE] if "grad_slope_predicted" in summary else [PREDICTED]


# Update ratios (issue 15) as columns before "escape epoch" where an experiment varies a remedy
# or checks the remedies claim: elsewhere they would widen every table by two columns.
UPDATE_COLUMNS: list[Column] = [
    Column(
        "update ratio epoch 1: geo. mean (min–max)",
        ratio_cell(lambda r: _geo_spread(r, "update_ratio_init")),
    ),
    Column(
        "update ratio last epoch: geo. mean (min–max)",
        ratio_cell(lambda r: _geo_spread(r, "update_ratio_final")),
    ),
]


def config_columns_for(summary: pd.DataFrame, updates: bool = False) -> list[Column]:
    """The per-config columns for ``summary`` (stats.config_summary): each metric summarised
    as its seeds allow (a median column only where a config has 3+ seeds), plus (after "init")
    every setting that varies between the configs, and the update ratios where asked or
    where a remedy setting varies."""
    split = bool((summary.get("n_basis", summary["n"]) < summary["n"]).any())
    learned = " of the seeds that learned" if split else ""
    several = bool((pd.to_numeric(summary["n"]) > 1).any())
    cols = [
        *SHAPE_COLUMNS,
        Column("epochs", field("epochs", format_int)),
        Column("n", field("n", format_int)),
        Column("never learned (95 % CI)", _never_learned),
        *_metric_columns(summary, "best_val_acc", f"best val acc (%){learned}", format_percent,
                         "mean"),
        *_metric_columns(summary, "test_acc", f"test acc (%){learned}", format_percent, "mean"),
        *_metric_columns(summary, "grad_ratio_init", "grad ratio at init", format_ratio,
                         "geo. mean"),
        *_prediction_columns(summary),
        *_metric_columns(summary, "grad_ratio_final", "grad ratio at end", format_ratio,
                         "geo. mean"),
        Column("escape epoch" + (" median (min–max)" if several else ""), ratio_cell(_escape_cell)),
        Column("verdicts", field("verdicts"), "left"),
    ]  # fmt: skip
    if updates or varies(summary, REMEDIES):  # issue 15: before "escape epoch"
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
