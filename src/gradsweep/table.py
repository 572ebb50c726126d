"""Markdown results table built from ``results/runs.parquet`` (see docs/outputs.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gradsweep.reference import EXPLODING_RATIO, METRICS, VANISHING_RATIO, annotate

MISSING = "—"

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


VERDICTS = (
    f"The **verdict** reads the median grad ratio over all epochs: *vanishing* above "
    f"{VANISHING_RATIO:g}, *exploding* below {EXPLODING_RATIO:g}, *healthy* between, "
    "*diverged* when the loss or a gradient became NaN or infinite. Where an experiment "
    "reproduces a published result, its last three columns give the measured value, the "
    "published reference and their difference Δ (percentage points for accuracies and errors, "
    "measured ÷ published for gradient norms)."
)


def format_ratio(x: Any) -> str:
    """Three significant digits; scientific (``1.23e-5``) when < 0.01 or >= 1000."""
    if x is None or pd.isna(x):
        return MISSING
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    r = float(f"{x:.3g}")  # round first so 999.6 -> 1.00e3 and 9.996 -> 10.0
    if abs(r) < 0.01 or abs(r) >= 1000:
        mantissa, exponent = f"{r:.2e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    decimals = max(0, 2 - math.floor(math.log10(abs(r))))
    return f"{r:.{decimals}f}"


def format_percent(x: Any) -> str:
    """Fraction in [0, 1] -> percentage with two decimals (``0.9712`` -> ``97.12``)."""
    if x is None or pd.isna(x) or math.isinf(float(x)):
        return MISSING
    return f"{100 * float(x):.2f}"


def format_int(x: Any) -> str:
    if x is None or pd.isna(x):
        return MISSING
    return str(int(x))


def format_text(x: Any) -> str:
    if x is None or (not isinstance(x, str) and pd.isna(x)):
        return MISSING
    return str(x).replace("|", "\\|")


def format_number(x: Any) -> str:
    if x is None or pd.isna(x):
        return MISSING
    return f"{float(x):g}"


@dataclass(frozen=True)
class Column:
    """One table column: header, the runs.parquet field it shows, how to format it."""

    header: str
    field: str
    fmt: Callable[[Any], str] = format_text
    align: str = "right"  # "left" or "right"

    def cell(self, row: pd.Series) -> str:
        return self.fmt(row.get(self.field))


# Append Columns here (e.g. reference value, delta, verdict) to extend the table.
COLUMNS: list[Column] = [
    Column("hidden layers", "depth", format_int),
    Column("widths", "widths", format_text, "left"),
    Column("activation", "activation", format_text, "left"),
    Column("init", "init", format_text, "left"),
    Column("seed", "seed", format_int),
    Column("epochs", "epochs", format_int),
    Column("best val acc (%)", "best_val_acc", format_percent),
    Column("test acc (%)", "test_acc", format_percent),
    Column("grad ratio at init", "grad_ratio_init", format_ratio),
    Column("grad ratio at end", "grad_ratio_final", format_ratio),
    Column("verdict", "verdict", format_text, "left"),
    Column("status", "status", format_text, "left"),
]

# Training settings shown as extra columns (after "seed") only when they vary in an experiment.
VARYING_SETTINGS: list[Column] = [
    Column("learning rate", "learning_rate", format_number),
    Column("batch size", "batch_size", format_int),
]

SORT_KEYS = ["depth", "_widths_key", "activation", "init", "seed", "run"]


def _widths_key(widths: Any) -> tuple[int, ...]:
    """``"500-300-150-50"`` -> (500, 300, 150, 50) so 30-30 sorts before 100-100."""
    if not isinstance(widths, str):
        return ()
    parts = widths.replace("x", "-").split("-")
    return tuple(int(p) for p in parts if p.isdigit())


def sort_runs(runs: pd.DataFrame) -> pd.DataFrame:
    df = runs.assign(_widths_key=runs["widths"].map(_widths_key))
    keys = [k for k in SORT_KEYS if k in df.columns]
    return df.sort_values(keys, kind="stable", na_position="last").drop(columns="_widths_key")


def columns_for(runs: pd.DataFrame, columns: list[Column] | None = None) -> list[Column]:
    """The table's columns, plus any training setting that varies within ``runs``."""
    cols = list(COLUMNS if columns is None else columns)
    extra = [c for c in VARYING_SETTINGS if c.field in runs.columns and runs[c.field].nunique() > 1]
    if extra:
        at = next((i + 1 for i, c in enumerate(cols) if c.field == "seed"), len(cols))
        cols[at:at] = extra
    return cols


def markdown_table(runs: pd.DataFrame, columns: list[Column]) -> str:
    header = "| " + " | ".join(c.header for c in columns) + " |"
    rule = "|" + "|".join(":---" if c.align == "left" else "---:" for c in columns) + "|"
    lines = [header, rule]
    for _, row in sort_runs(runs).iterrows():
        lines.append("| " + " | ".join(c.cell(row) for c in columns) + " |")
    return "\n".join(lines)


def _section_intro(runs: pd.DataFrame) -> str:
    datasets = sorted({str(d) for d in runs.get("dataset", pd.Series(dtype=str)).dropna()})
    n_div = int((runs.get("status", pd.Series(dtype=str)) == "diverged").sum())
    dataset = ", ".join(f"**{d}**" for d in datasets) or MISSING
    noun = "run" if len(runs) == 1 else "runs"
    text = f"Dataset: {dataset} · {len(runs)} {noun}"
    if n_div:
        text += f" ({n_div} diverged)"
    return text + "."


def reference_columns(metric: str) -> list[Column]:
    """Measured value, published reference and their difference, for one experiment."""
    return [
        Column(f"{METRICS[metric]} measured", "measured", format_text),
        Column("reference", "reference", format_text),
        Column("Δ", "delta", format_text),
    ]


def results_markdown(
    runs: pd.DataFrame,
    columns: list[Column] | None = None,
    references: dict[str, dict | None] | None = None,
) -> str:
    """Markdown results page: intro paragraph, then one table section per experiment.

    ``references`` maps an experiment to its config ``reference:`` block; such experiments
    get the published source and claim, and measured / reference / Δ columns.
    """
    references = references or {}
    parts = ["# Results", "", INTRO, "", VERDICTS, ""]
    if runs.empty:
        parts += ["No runs found.", ""]
        return "\n".join(parts)
    runs = annotate(runs, references) if references else runs
    experiments = runs["experiment"].fillna("(no experiment)")
    for name in sorted(experiments.unique()):
        group = runs[experiments == name]
        cols = columns_for(group, columns)
        block = references.get(name) or {}
        intro = _section_intro(group)
        if block:
            intro += f" Reference: {block['source']}."
            if block.get("claim"):
                intro += f" Published finding: *{block['claim']}*."
            cols = cols + reference_columns(block["metric"])
        parts += [f"## {name}", "", intro, "", markdown_table(group, cols), ""]
    return "\n".join(parts)
