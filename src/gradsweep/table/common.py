"""What results.md and results_seeds.md share: the verdict paragraph, section intros, the run
order and table columns whose cells come from a row (one run, or one config's statistics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from gradsweep.facets import unit_width
from gradsweep.formatting import MISSING, format_int, format_number, format_text
from gradsweep.settings import SETTING_NAMES, Setting, widths_list
from gradsweep.verdicts import EXPLODING_RATIO, ONE_LAYER, VANISHING_RATIO, has_ratio

VERDICTS = (
    "The **verdict** reads the grad ratio at initialisation and after every epoch: "
    f"*vanishing* above {VANISHING_RATIO:g}, *exploding* below {EXPLODING_RATIO:g}, *healthy* "
    "between, *diverged* when the loss or a gradient became NaN or infinite. The **escape "
    "epoch** is the first epoch from which the ratio stays healthy to the end (0: healthy "
    "from the start; *never*: not healthy at the end), and the verdict names both phases, "
    "e.g. *vanishing until epoch 5 → healthy*. A net with one hidden layer has no ratio "
    f"(its first hidden layer is its last) and no verdict: *{ONE_LAYER}*. Where an experiment "
    "reproduces a published result, its last three columns give the measured value, the "
    "published reference and their difference Δ (percentage points for accuracies and errors, "
    "measured ÷ published for gradient norms)."
)


@dataclass(frozen=True)
class Column:
    """One table column: its header, how a row (one run, or one config's statistics) becomes
    a cell, and its alignment ("left" or "right")."""

    header: str
    cell: Callable[[pd.Series], str]
    align: str = "right"


def field(name: str, fmt: Callable[[Any], str] = format_text) -> Callable[[pd.Series], str]:
    """A cell that shows one column of the row, formatted."""
    return lambda row: fmt(row.get(name))


def ratio_cell(cell: Callable[[pd.Series], str]) -> Callable[[pd.Series], str]:
    """A ratio's (or escape epoch's) cell: ``n/a`` for a net with one hidden layer."""
    return lambda row: cell(row) if has_ratio(row.get("depth", 2)) else "n/a"


def setting_column(setting: Setting) -> Column:
    """The column of a run setting that varies within an experiment: numbers right-aligned
    (integers as such), text and flags left-aligned."""
    if pa.types.is_integer(setting.type):
        return Column(setting.header or setting.name, field(setting.name, format_int))
    if pa.types.is_floating(setting.type):
        return Column(setting.header or setting.name, field(setting.name, format_number))
    return Column(setting.header or setting.name, field(setting.name), "left")


def varies(rows: pd.DataFrame, names: Iterable[str]) -> bool:
    """Does any of these columns take more than one value (missing counts as one) in rows?"""
    return any(n in rows.columns and rows[n].nunique(dropna=False) > 1 for n in names)


def varying_columns(rows: pd.DataFrame, settings: tuple[Setting, ...]) -> list[Column]:
    """The columns of those ``settings`` whose values differ between ``rows``; a derived one
    (Setting.derived) only where it differs between rows equal in every other setting."""
    return [
        setting_column(s)
        for s in settings
        if varies(rows, [s.name]) and (not s.derived or _varies_alone(rows, s.name))
    ]


def _varies_alone(rows: pd.DataFrame, name: str) -> bool:
    """Does ``name`` take two values in some group of rows equal in every other setting?"""
    others = [c for c in SETTING_NAMES if c != name and c in rows.columns]
    if not others:
        return True
    groups = rows.groupby(others, dropna=False)[name]
    return bool((groups.nunique(dropna=False) > 1).any())


# A net's shape and nonlinearity: the first columns of every table, one run or one config.
# Equal widths show once ("100" beside 50 hidden layers, not 50 hundreds); others in full.
SHAPE_COLUMNS: list[Column] = [
    Column("hidden layers", field("depth", format_int)),
    Column("widths", field("widths", unit_width), "left"),
    Column("activation", field("activation"), "left"),
    Column("init", field("init"), "left"),
]


def insert_after(columns: list[Column], header: str, extra: list[Column]) -> list[Column]:
    """``columns`` with ``extra`` after the column called ``header`` (at the end if none)."""
    at = next((i + 1 for i, c in enumerate(columns) if c.header == header), len(columns))
    return [*columns[:at], *extra, *columns[at:]]


def render(rows: pd.DataFrame, columns: list[Column]) -> str:
    """A Markdown table: one line per row of ``rows``, in their order ("|" in a cell escaped)."""
    lines = [
        "| " + " | ".join(c.header for c in columns) + " |",
        "|" + "|".join(":---" if c.align == "left" else "---:" for c in columns) + "|",
    ]
    for _, row in rows.iterrows():
        lines.append("| " + " | ".join(c.cell(row).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


SORT_KEYS = ["depth", "_widths_key", "activation", "init", "seed", "run"]


def sort_runs(runs: pd.DataFrame) -> pd.DataFrame:
    # "500-300-150-50" -> (500, 300, 150, 50) so 30-30 sorts before 100-100
    df = runs.assign(_widths_key=runs["widths"].map(lambda w: tuple(widths_list(w))))
    keys = [k for k in SORT_KEYS if k in df.columns]
    return df.sort_values(keys, kind="stable", na_position="last").drop(columns="_widths_key")


def section_intro(runs: pd.DataFrame) -> str:
    datasets = sorted({str(d) for d in runs.get("dataset", pd.Series(dtype=str)).dropna()})
    n_div = int((runs.get("status", pd.Series(dtype=str)) == "diverged").sum())
    dataset = ", ".join(f"**{d}**" for d in datasets) or MISSING
    noun = "run" if len(runs) == 1 else "runs"
    text = f"Dataset: {dataset} · {len(runs)} {noun}"
    if n_div:
        text += f" ({n_div} diverged)"
    return text + "."


def reference_intro(block: Mapping[str, Any]) -> str:
    """The sentences after a section's intro naming its published source and finding."""
    if not block:
        return ""
    text = f" Reference: {block['source']}."
    if block.get("claim"):
        text += f" Published finding: *{block['claim']}*."
    return text
