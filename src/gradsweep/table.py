"""Markdown results table built from ``results/runs.parquet`` (see docs/outputs.md)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gradsweep.aggregate import widths_list
from gradsweep.io import atomic_path
from gradsweep.reference import (
    CLAIM_METRICS,
    EXPLODING_RATIO,
    METRICS,
    VANISHING_RATIO,
    annotate,
    claim_section,
    matches,
)
from gradsweep.stats import (
    METHOD,
    config_summary,
    geometric_interval,
    mean_interval,
    position,
    with_config_id,
)

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
    "The **verdict** reads the grad ratio at initialisation and after every epoch: "
    f"*vanishing* above {VANISHING_RATIO:g}, *exploding* below {EXPLODING_RATIO:g}, *healthy* "
    "between, *diverged* when the loss or a gradient became NaN or infinite. The **escape "
    "epoch** is the first epoch from which the ratio stays healthy to the end (0: healthy "
    "from the start; *never*: not healthy at the end), and the verdict names both phases, "
    "e.g. *vanishing until epoch 5 → healthy*. Where an experiment "
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


def format_escape(x: Any) -> str:
    """Escape epoch: the epoch, or ``never`` (NaN); missing column: —."""
    if x is None:
        return MISSING
    return "never" if pd.isna(x) else str(int(x))


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
    Column("escape epoch", "escape_epoch", lambda x: format_escape(x)),
    Column("verdict", "verdict", format_text, "left"),
    Column("status", "status", format_text, "left"),
]

# Training settings shown as extra columns (after "seed") only when they vary in an experiment.
VARYING_SETTINGS: list[Column] = [
    Column("learning rate", "learning_rate", format_number),
    Column("batch size", "batch_size", format_int),
    Column("optimizer", "optimizer", format_text, "left"),
    Column("nesterov", "nesterov", format_text, "left"),
    Column("normalization", "normalization", format_text, "left"),
    Column("residual", "residual", format_text, "left"),
]

SORT_KEYS = ["depth", "_widths_key", "activation", "init", "seed", "run"]


def sort_runs(runs: pd.DataFrame) -> pd.DataFrame:
    # "500-300-150-50" -> (500, 300, 150, 50) so 30-30 sorts before 100-100
    df = runs.assign(_widths_key=runs["widths"].map(lambda w: tuple(widths_list(w))))
    keys = [k for k in SORT_KEYS if k in df.columns]
    return df.sort_values(keys, kind="stable", na_position="last").drop(columns="_widths_key")


SEED_UPDATE_COLUMNS: list[Column] = [
    Column("update ratio epoch 1", "update_ratio_init", format_ratio),
    Column("update ratio last epoch", "update_ratio_final", format_ratio),
]


def columns_for(runs: pd.DataFrame, columns: list[Column] | None = None) -> list[Column]:
    """The table's columns, plus any training setting that varies within ``runs``, and the
    update ratios after the grad ratios where a remedy setting varies."""
    cols = list(COLUMNS if columns is None else columns)
    extra = [c for c in VARYING_SETTINGS if c.field in runs.columns and runs[c.field].nunique() > 1]
    if extra:
        at = next((i + 1 for i, c in enumerate(cols) if c.field == "seed"), len(cols))
        cols[at:at] = extra
    if any(c.field in REMEDY_SETTINGS for c in extra):
        at = next((i + 1 for i, c in enumerate(cols) if c.field == "grad_ratio_final"), len(cols))
        cols[at:at] = SEED_UPDATE_COLUMNS
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


def seeds_markdown(
    runs: pd.DataFrame,
    columns: list[Column] | None = None,
    references: dict[str, dict | None] | None = None,
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
        intro = _section_intro(group)
        if block:
            intro += f" Reference: {block['source']}."
            if block.get("claim"):
                intro += f" Published finding: *{block['claim']}*."
            if block["metric"] not in CLAIM_METRICS:  # those are checked per config, results.md
                cols = cols + reference_columns(block["metric"])
        parts += [f"## {name}", "", intro, "", markdown_table(group, cols), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- per config

SEEDS_FILE = "results_seeds.md"

CONFIG_INTRO = (
    "Each row below is one **config**: runs that differ only in their random seed. *n* is "
    "the number of seeds. Accuracies (in %) are given as the mean and its 95 % interval "
    "[lo, hi], then the median and the min–max range over the seeds; *never learned* counts "
    "runs whose best validation accuracy stayed below twice chance (20 %). A mean with a "
    "wide interval and a low minimum means some seeds learned and others did not: read the "
    "median and the range too. The **grad ratio** is the norm of the loss gradient with "
    "respect to the biases of the last hidden layer divided by that of the first hidden "
    "layer, both on a fixed probe set of training images, at initialisation and after the "
    "last epoch: ≈ 1 means all layers learn at a similar speed, ≫ 1 that the first layer "
    "learns that many times slower (the gradient *vanishes* towards the input), ≪ 1 that it "
    "*explodes*; ∞ means the first layer's gradient underflowed to 0. Ratios spread over "
    "decades, so they are summarised by their geometric mean."
)


def _method() -> str:
    return (
        f"Statistics: {METHOD}. With a single seed there is no interval "
        "(*n = 1, no interval*). Where an experiment reproduces a published number, *Δ* is "
        "our mean minus the published value and the last column says whether the published "
        "value lies *inside*, *above* or *below* our interval."
    )


def _pct(x: Any) -> str:
    return format_percent(x)


def interval_cell(mean: Any, lo: Any, hi: Any, n: Any, fmt: Callable[[Any], str]) -> str:
    """``95.87 [95.21, 96.53]``; a single value says it has no interval."""
    if mean is None or pd.isna(mean):
        return MISSING
    if lo is None or pd.isna(lo) or pd.isna(hi):
        return fmt(mean)  # n = 1: the section intro and "published is" say so
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def spread_cell(median: Any, lo: Any, hi: Any, fmt: Callable[[Any], str]) -> str:
    """``96.10 (95.40–96.53)``: median and min–max."""
    if median is None or pd.isna(median):
        return MISSING
    if lo == hi:
        return fmt(median)
    return f"{fmt(median)} ({fmt(lo)}–{fmt(hi)})"


def _escape_cell(row: pd.Series) -> str:
    med, lo, hi = row.get("escape_epoch_median"), row.get("escape_epoch_min"), None
    hi = row.get("escape_epoch_max")
    never = int(row.get("n_never_escaped", 0) or 0)
    text = spread_cell(med, lo, hi, format_number) if med is not None and pd.notna(med) else ""
    if never:
        text = f"{text}; {never} never" if text else "never"
    return text or MISSING


def _stat(metric: str, kind: str, fmt: Callable[[Any], str]) -> Callable[[pd.Series], str]:
    if kind == "interval":
        return lambda r: interval_cell(
            r.get(f"{metric}_mean"), r.get(f"{metric}_lo"), r.get(f"{metric}_hi"),
            r.get(f"{metric}_n"), fmt,
        )  # fmt: skip
    return lambda r: spread_cell(
        r.get(f"{metric}_median"), r.get(f"{metric}_min"), r.get(f"{metric}_max"), fmt
    )


@dataclass(frozen=True)
class ConfigColumn:
    """One column of the per-config table: header and how a summary row becomes a cell."""

    header: str
    cell: Callable[[pd.Series], str]
    align: str = "right"


def _field(name: str, fmt: Callable[[Any], str] = format_text) -> Callable[[pd.Series], str]:
    return lambda r: fmt(r.get(name))


CONFIG_COLUMNS: list[ConfigColumn] = [
    ConfigColumn("hidden layers", _field("depth", format_int)),
    ConfigColumn("widths", _field("widths"), "left"),
    ConfigColumn("activation", _field("activation"), "left"),
    ConfigColumn("init", _field("init"), "left"),
    ConfigColumn("epochs", _field("epochs", format_int)),
    ConfigColumn("n", _field("n", format_int)),
    ConfigColumn("best val acc (%) mean [95 % CI]", _stat("best_val_acc", "interval", _pct)),
    ConfigColumn("median (min–max)", _stat("best_val_acc", "spread", _pct)),
    ConfigColumn(
        "never learned", lambda r: f"{format_int(r.get('n_never_learned'))}/{format_int(r['n'])}"
    ),
    ConfigColumn("test acc (%) mean [95 % CI]", _stat("test_acc", "interval", _pct)),
    ConfigColumn("median (min–max)", _stat("test_acc", "spread", _pct)),
    ConfigColumn(
        "grad ratio at init: geo. mean [95 % CI]",
        _stat("grad_ratio_init", "interval", format_ratio),
    ),
    ConfigColumn("median (min–max)", _stat("grad_ratio_init", "spread", format_ratio)),
    ConfigColumn(
        "grad ratio at end: geo. mean [95 % CI]",
        _stat("grad_ratio_final", "interval", format_ratio),
    ),
    ConfigColumn("median (min–max)", _stat("grad_ratio_final", "spread", format_ratio)),
    ConfigColumn("escape epoch median (min–max)", _escape_cell),
    ConfigColumn("verdicts", _field("verdicts"), "left"),
]

# Settings shown as extra columns (after "init") only when they vary between an experiment's
# configs.
VARYING_CONFIG_SETTINGS = {
    "learning_rate": ("learning rate", format_number),
    "batch_size": ("batch size", format_int),
    "l2": ("L2 λ", format_number),
    "loss": ("loss", format_text),
    "bias_init": ("bias init", format_text),
    "weight_scale": ("weight scale", format_number),
    "train_subset": ("train subset", format_int),
    "probe_size": ("probe size", format_int),
    "trace_every": ("trace every", format_int),
    "dataset": ("dataset", format_text),
    "optimizer": ("optimizer", format_text),
    "nesterov": ("nesterov", format_text),
    "normalization": ("normalization", format_text),
    "residual": ("residual", format_text),
}
REMEDY_SETTINGS = ("optimizer", "nesterov", "normalization", "residual")
# Update ratios (issue 15) as columns before "escape epoch" where an experiment varies a remedy
# or checks the remedies claim: elsewhere they would widen every table by two columns.
UPDATE_COLUMNS: list[ConfigColumn] = [
    ConfigColumn(
        "update ratio epoch 1: geo. mean (min–max)",
        lambda r: _geo_spread(r, "update_ratio_init"),
    ),
    ConfigColumn(
        "update ratio last epoch: geo. mean (min–max)",
        lambda r: _geo_spread(r, "update_ratio_final"),
    ),
]


def _geo_spread(row: pd.Series, metric: str) -> str:
    mean = row.get(f"{metric}_mean")
    if mean is None or pd.isna(mean):
        return MISSING
    lo, hi = row.get(f"{metric}_min"), row.get(f"{metric}_max")
    spread = f" ({format_ratio(lo)}–{format_ratio(hi)})" if lo != hi else ""
    return format_ratio(mean) + spread


def config_columns_for(summary: pd.DataFrame, updates: bool = False) -> list[ConfigColumn]:
    cols = list(CONFIG_COLUMNS)
    varies = any(c in summary and summary[c].nunique(dropna=False) > 1 for c in REMEDY_SETTINGS)
    if updates or varies:
        at = next(i for i, c in enumerate(cols) if c.header.startswith("escape epoch"))
        cols[at:at] = UPDATE_COLUMNS
    extra = [
        ConfigColumn(header, _field(field, fmt))
        for field, (header, fmt) in VARYING_CONFIG_SETTINGS.items()
        if field in summary and summary[field].nunique(dropna=False) > 1
    ]
    at = next(i + 1 for i, c in enumerate(cols) if c.header == "init")
    cols[at:at] = extra
    return cols


def _reference_cells(row: pd.Series, metric: str, ref: Any) -> tuple[str, str, str, str]:
    """(measured, published, Δ of the mean, where the published value lies) for one config."""
    if metric in ("best_val_acc", "test_acc", "test_error"):
        key = "test_acc" if metric == "test_error" else metric
        mean, lo, hi = (100 * float(row.get(f"{key}_{s}", np.nan)) for s in ("mean", "lo", "hi"))
        if metric == "test_error":
            mean, lo, hi = 100 - mean, 100 - hi, 100 - lo
        fmt = _num2
        measured = interval_cell(mean, lo, hi, row.get(f"{key}_n"), fmt)
        if ref is None:
            return measured, MISSING, MISSING, MISSING
        return measured, fmt(float(ref)), f"{mean - float(ref):+.2f}", position(ref, lo, hi)
    if metric == "probe_bias_norms_init":
        measured = row.get("norms_gmean") or []
        text = " / ".join(f"{v:.3g}" for v in measured) or MISSING
        if ref is None:
            return text, MISSING, MISSING, MISSING
        ratios = " ".join(f"×{m / r:.2f}" for m, r in zip(measured, ref, strict=False))
        where = " / ".join(
            position(r, lo, hi)
            for r, lo, hi in zip(ref, row.get("norms_lo") or [], row.get("norms_hi") or [],
                                 strict=False)
        )  # fmt: skip
        return text, " / ".join(f"{v:.3g}" for v in ref), ratios, where or MISSING
    if metric == "bias_order":
        frac = float(row.get("bias_order_frac_mean", np.nan))
        shown = f"{100 * frac:.0f} % of epochs" if np.isfinite(frac) else MISSING
        verdict = "holds" if frac == 1 else ("mostly" if frac >= 0.5 else "fails")
        return shown, "1 < 2 < 3 < 4", verdict, MISSING
    if metric == "dead_frac":
        return (
            interval_cell(
                row.get("dead_frac_final_mean"),
                row.get("dead_frac_final_lo"),
                row.get("dead_frac_final_hi"),
                row.get("n"),
                lambda x: _num1(100 * x),
            ),  # fmt: skip
            MISSING,
            MISSING,
            MISSING,
        )
    return format_text(row.get("verdicts")), MISSING, MISSING, MISSING


def _num2(x: Any) -> str:
    return MISSING if x is None or not np.isfinite(x) else f"{x:.2f}"


def _num1(x: Any) -> str:
    return MISSING if x is None or not np.isfinite(x) else f"{x:.1f}"


def _extra_stats(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per-config statistics some references need (norms per layer, order, dead units)."""
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


def config_table(runs: pd.DataFrame, references: dict[str, dict | None] | None = None) -> str:
    """Per-config Markdown table of one experiment's runs."""
    summary = _extra_stats(runs, config_summary(runs))
    summary = sort_runs(summary.assign(seed=0, run=""))
    block = (references or {}).get(str(runs["experiment"].iloc[0])) or {}
    metric = block.get("metric")
    cols = config_columns_for(summary, updates=metric == "remedies")
    if metric in CLAIM_METRICS:  # checked across configs below the table (claim_section)
        metric = None
    show_measured = metric not in ("best_val_acc", "test_acc")  # already a column
    cells = []
    for _, row in summary.iterrows():
        line = [c.cell(row) for c in cols]
        if metric:
            entry = next((e for e in block.get("values", []) if matches(row, e)), None)
            ref = list(_reference_cells(row, metric, entry["value"] if entry else None))
            line += ref if show_measured else ref[1:]
        cells.append(line)
    headers = [c.header for c in cols]
    aligns = [c.align for c in cols]
    if metric:
        headers += [f"{METRICS[metric]} measured"] if show_measured else []
        headers += [
            "published",
            "Δ mean" if metric not in ("probe_bias_norms_init",) else "measured ÷ published",
            "published is",
        ]
        aligns += ["right"] * (4 if show_measured else 3)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(":---" if a == "left" else "---:" for a in aligns) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells]
    return "\n".join(lines)


def results_markdown(
    runs: pd.DataFrame,
    references: dict[str, dict | None] | None = None,
    seeds_link: str | None = SEEDS_FILE,
    metrics: pd.DataFrame | None = None,
) -> str:
    """Markdown results page, one row per config (seeds aggregated), one section per
    experiment; ``seeds_link`` names the per-seed page (:func:`seeds_markdown`). An
    experiment whose reference checks a claim across its configs (reference.CLAIM_METRICS)
    gets its measured verdict below its table; ``bn_speed`` reads ``metrics`` (test accuracy
    per step, metrics.parquet)."""
    references = references or {}
    runs = with_config_id(runs)
    parts = ["# Results", "", CONFIG_INTRO, "", VERDICTS, "", _method(), ""]
    if seeds_link:
        parts += [f"One row per run (every seed): [{seeds_link}]({seeds_link}).", ""]
    if runs.empty:
        parts += ["No runs found.", ""]
        return "\n".join(parts)
    experiments = runs["experiment"].fillna("(no experiment)")
    for name in sorted(experiments.unique()):
        group = runs[experiments == name]
        intro = _section_intro(group)
        n_configs = group["config_id"].nunique()
        intro = intro[:-1] + f" in {n_configs} config{'s' if n_configs != 1 else ''}."
        singles = int((group.groupby("config_id").size() == 1).sum())
        if singles:
            which = "every config" if singles == n_configs else f"{singles} config(s)"
            intro += f" n = 1, no interval: {which} ran a single seed."
        block = references.get(name) or {}
        if block:
            intro += f" Reference: {block['source']}."
            if block.get("claim"):
                intro += f" Published finding: *{block['claim']}*."
        parts += [f"## {name}", "", intro, "", config_table(group, references), ""]
        if block and block["metric"] in CLAIM_METRICS:
            parts += [*claim_section(block["metric"], group, metrics), ""]
    return "\n".join(parts)


def write_results(
    runs: pd.DataFrame,
    out: str | Path,
    seeds_out: str | Path,
    references: dict[str, dict | None] | None = None,
    metrics: pd.DataFrame | None = None,
) -> None:
    """Write results.md (one row per config) and, beside it, the per-seed page it links to."""
    seeds_out = Path(seeds_out)
    link = os.path.relpath(seeds_out, Path(out).parent)
    with atomic_path(out) as tmp:
        tmp.write_text(results_markdown(runs, references, link, metrics), encoding="utf-8")
    with atomic_path(seeds_out) as tmp:
        tmp.write_text(seeds_markdown(runs, references=references), encoding="utf-8")
