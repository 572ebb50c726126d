"""results_seeds.md: one row per run (every seed), one section per experiment."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from gradsweep.formatting import (
    MISSING,
    format_escape,
    format_int,
    format_percent,
    format_ratio,
)
from gradsweep.reference import CLAIM_METRICS, METRICS, annotate
from gradsweep.settings import REMEDIES, VARYING
from gradsweep.table.common import (
    SHAPE_COLUMNS,
    VERDICTS,
    Column,
    field,
    insert_after,
    ratio_cell,
    reference_intro,
    render,
    section_intro,
    sort_runs,
    varies,
    varying_columns,
)

INTRO = (
    "Each row below is one trained network. *Hidden layers* and *widths* give its shape "
    "(units per hidden layer, input side first), *activation* and *init* its nonlinearity and "
    "weight initialisation. *Best val acc* is the highest validation accuracy over all epochs "
    "and *test acc* the test accuracy at that same epoch. The **grad ratio** is the norm of the "
    "loss gradient with respect to the biases of the last hidden layer divided by that of the "
    "first hidden layer, both measured on a fixed probe set of training images, at "
    "initialisation and after the last epoch. A ratio near 1 means all layers receive "
    "gradients of similar size and learn at a similar speed; a ratio ≫ 1 (e.g. 100) means the "
    "first layer learns about that many times slower than the last: the gradient *vanishes* on "
    "its way back to the input, as in deep sigmoid nets. A ratio ≪ 1 means gradients *explode* "
    "towards the input; ∞ means the first layer's gradient underflowed to exactly 0 in float32. "
    "Runs whose loss became NaN or infinite are kept with status "
    f"`diverged`; numbers they never produced are shown as {MISSING}."
)

COLUMNS: list[Column] = [
    *SHAPE_COLUMNS,
    Column("seed", field("seed", format_int)),
    Column("epochs", field("epochs", format_int)),
    Column("best val acc (%)", field("best_val_acc", format_percent)),
    Column("test acc (%)", field("test_acc", format_percent)),
    Column("grad ratio at init", ratio_cell(field("grad_ratio_init", format_ratio))),
    Column("grad ratio at end", ratio_cell(field("grad_ratio_final", format_ratio))),
    Column("escape epoch", ratio_cell(field("escape_epoch", format_escape))),
    Column("verdict", field("verdict"), "left"),
    Column("status", field("status"), "left"),
]
# after the grad ratios where a remedy setting varies within the experiment
UPDATE_COLUMNS: list[Column] = [
    Column("update ratio epoch 1", ratio_cell(field("update_ratio_init", format_ratio))),
    Column("update ratio last epoch", ratio_cell(field("update_ratio_final", format_ratio))),
]


def columns_for(runs: pd.DataFrame, columns: list[Column] | None = None) -> list[Column]:
    """The table's columns, plus (after "seed") every run setting that varies within ``runs``,
    and the update ratios after the grad ratios where a remedy setting varies."""
    extra = varying_columns(runs, VARYING)
    cols = insert_after(list(COLUMNS if columns is None else columns), "seed", extra)
    if varies(runs, REMEDIES):
        cols = insert_after(cols, "grad ratio at end", UPDATE_COLUMNS)
    return cols


def reference_columns(metric: str) -> list[Column]:
    """Measured value, published reference and their difference, for one experiment."""
    return [
        Column(f"{METRICS[metric]} measured", field("measured")),
        Column("reference", field("reference")),
        Column("Δ", field("delta")),
    ]


def seeds_markdown(
    runs: pd.DataFrame,
    columns: list[Column] | None = None,
    references: Mapping[str, Mapping | None] | None = None,
) -> str:
    """Markdown page of every run (one row per seed): intro, then one section per experiment.

    ``references`` maps an experiment to its config ``reference:`` block; such experiments
    get the published source and claim, and measured / reference / Δ columns.
    """
    references = references or {}
    parts = ["# Results per run (one row per seed)", "", INTRO, "", VERDICTS, ""]
    if runs.empty:
        parts += ["No runs found.", ""]
        return "\n".join(parts)
    runs = annotate(runs, references) if references else runs
    experiments = runs["experiment"].fillna("(no experiment)")
    for name in sorted(experiments.unique()):
        group = runs[experiments == name]
        cols = columns_for(group, columns)
        block = references.get(name) or {}
        intro = section_intro(group) + reference_intro(block)
        if block and block["metric"] not in CLAIM_METRICS:  # claims: per config, results.md
            cols = cols + reference_columns(block["metric"])
        parts += [f"## {name}", "", intro, "", render(sort_runs(group), cols), ""]
    return "\n".join(parts)
