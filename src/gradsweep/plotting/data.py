"""The tidy data layer of the figures: ``runs.parquet`` / ``traces.parquet`` (columns:
docs/outputs.md) into the long tables figures draw, and how an experiment's configs are laid
out into panels and pages.

Every setting is a column of runs.parquet (``gradsweep.stats.SETTINGS``); nothing is parsed
back out of a run name. A *config* is a run without its seed (column ``config_id``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from gradsweep.aggregate import widths_list

MAX_PANELS = 24  # per image (issue 13: figures must stay readable at 1,000 runs)
MAX_HEIGHT_PX = 6000
# Display order of categorical settings (anything else follows, sorted).
ACTIVATION_ORDER = [
    "sigmoid",
    "tanh",
    "softsign",
    "softplus",
    "relu",
    "leaky_relu",
    "elu",
    "linear",
]
INIT_ORDER = [
    "normal",
    "standard_uniform",
    "scaled_normal",
    "scaled_normal_relu",
    "lecun_normal",
    "lecun_uniform",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
]
TRACE_COLUMNS = ("run_id", "epoch", "step", "layer", "param", "grad_norm", "source")

# Axes a figure may facet by, in the order they are used: the first two that vary are the
# panel columns and rows, the others split the configs into pages (outermost = last).
FACET_AXES = [
    "activation",
    "depth",
    "init",
    "optimizer",
    "normalization",
    "residual",
    "nesterov",
    "width",
    "learning_rate",
    "batch_size",
    "epochs",
    "l2",
    "loss",
    "bias_init",
    "weight_scale",
    "train_subset",
    "probe_size",
    "trace_every",
    "dataset",
]
AXIS_NAMES = {
    "activation": "",
    "init": "",
    "depth": "hidden layers",
    "width": "width",
    "learning_rate": "η",
    "batch_size": "batch",
    "epochs": "epochs",
    "l2": "λ",
    "loss": "loss",
    "bias_init": "bias init",
    "weight_scale": "weight scale",
    "train_subset": "train subset",
    "probe_size": "probe size",
    "trace_every": "trace every",
    "dataset": "",
    "optimizer": "",
    "normalization": "",
    "residual": "",
    "nesterov": "",
}
# How the remedy axes' values read in titles and labels (axis_text).
REMEDY_TEXT = {
    ("normalization", "none"): "no norm.",
    ("normalization", "batch_norm"): "batch norm",
    ("normalization", "layer_norm"): "layer norm",
    ("residual", True): "residual",
    ("residual", False): "no shortcut",
    ("nesterov", True): "Nesterov",
    ("nesterov", False): "no Nesterov",
    ("optimizer", "sgd"): "SGD",
    ("optimizer", "momentum"): "momentum",
    ("optimizer", "adam"): "Adam",
}
OPTIMIZER_ORDER = ["sgd", "momentum", "adam"]
NORMALIZATION_ORDER = ["none", "batch_norm", "layer_norm"]


# --------------------------------------------------------------------------- reading


def ordered(values: object, preferred: list[str]) -> list[str]:
    """Unique values as strings: the preferred ones in that order, then the rest sorted."""
    present = [str(v) for v in pd.unique(pd.Series(values).dropna())]
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def read_traces(
    path: str | Path | Sequence[str | Path],
    *,
    experiment: str | None = None,
    source: str | None = None,
    param: str | None = "bias",
    columns: Sequence[str] = TRACE_COLUMNS,
    run_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Read only the trace rows and columns a figure needs (pyarrow filter push-down)."""
    paths = [str(p) for p in path] if isinstance(path, list | tuple) else str(path)
    # low-cardinality strings arrive as dictionaries (pandas categoricals): millions of step
    # rows carry a handful of run ids, and comparing or joining on them stays cheap
    read = ds.ParquetReadOptions(dictionary_columns=["run_id", "experiment", "source", "param"])
    dataset = ds.dataset(paths, format=ds.ParquetFileFormat(read_options=read))
    names = set(dataset.schema.names)
    expr = None
    for col, val in (("experiment", experiment), ("source", source), ("param", param)):
        if val is not None and col in names:  # per-run files have no experiment column
            cond = ds.field(col) == val
            expr = cond if expr is None else expr & cond
    if run_ids is not None:
        cond = ds.field("run_id").isin(sorted(set(run_ids)))
        expr = cond if expr is None else expr & cond
    table = dataset.to_table(columns=[c for c in columns if c in names], filter=expr)
    df = table.to_pandas()
    if experiment is not None and "experiment" not in names and "run_id" in df:
        df = df[df["run_id"].astype(str).str.startswith(f"{experiment}/")]
    return df


def isin(s: pd.Series, values: object) -> pd.Series:
    """``s.isin`` via a set of unique values (pandas' Arrow-string isin is slow for long lists)."""
    return s.isin(set(pd.unique(pd.Series(values))))


def finite_positive(df: pd.DataFrame, col: str) -> pd.DataFrame:
    v = pd.to_numeric(df[col], errors="coerce")
    return df[np.isfinite(v) & (v > 0)]


def hidden_bias(traces: pd.DataFrame, runs: pd.DataFrame, source: str) -> pd.DataFrame:
    """Bias-gradient rows of the hidden layers (1..depth) of ``runs``, one trace source, with
    the run's config_id, seed, depth and status as columns."""
    return hidden_rows(traces, runs, source, "bias")


def hidden_rows(traces: pd.DataFrame, runs: pd.DataFrame, source: str, param: str) -> pd.DataFrame:
    """Rows of one parameter tensor (``bias``, ``kernel``, ``scale``) of the hidden layers
    (1..depth) of ``runs``, one trace source, with config_id, seed, depth and status."""
    keep = [c for c in ("config_id", "seed", "depth", "status") if c in runs]
    tr = traces[(traces["source"] == source) & (traces["param"] == param)]
    # each row's run by position in ``runs`` (a join on millions of step rows' string keys
    # is the slow part of a step figure; the distinct run ids are few)
    ids = tr["run_id"].astype("category").cat  # free when read as a dictionary (read_traces)
    position = pd.Index(pd.unique(runs["run_id"])).get_indexer(ids.categories)
    codes = np.append(position, -1)[ids.codes.to_numpy()]  # a missing id (code -1) stays -1
    tr = tr[codes >= 0]
    per_run = runs.drop_duplicates("run_id")
    row_runs = codes[codes >= 0]
    tr = tr.assign(**{c: _take(per_run[c], row_runs) for c in keep})
    return tr[(tr["layer"] >= 1) & (tr["layer"] <= tr["depth"])]


def _take(values: pd.Series, positions: np.ndarray) -> Any:
    """``values`` at ``positions``; strings as a categorical, not one Python string per row."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.to_numpy()[positions]
    labels = pd.Categorical(values)
    return pd.Categorical.from_codes(labels.codes[positions], labels.categories)


def divergence_points(traces: pd.DataFrame, runs: pd.DataFrame, x: str) -> dict[str, float]:
    """Last epoch/step recorded for each diverged run (where its trace turns NaN/inf)."""
    div = runs.loc[runs["status"] == "diverged", "run_id"]
    rows = traces[isin(traces["run_id"], div)]
    return rows.groupby("run_id")[x].max().astype(float).to_dict()


def is_diverged(row: Mapping[str, Any]) -> bool:
    return str(row.get("status", "ok")) == "diverged"


# --------------------------------------------------------------------------- widths


def widths_label(widths: object) -> str:
    """``"100-100-100"`` -> ``"3 × 100"``; mixed widths are kept as ``500-300-150-50``."""
    w = widths_list(widths)
    if not w:
        return "?"
    if len(w) > 1 and len(set(w)) == 1:
        return f"{len(w)} × {w[0]}"
    return "-".join(map(str, w))


def unit_width(widths: object) -> str:
    """Per-layer width when all hidden layers are equally wide, else the widths pattern."""
    w = widths_list(widths)
    return str(w[0]) if w and len(set(w)) == 1 else "-".join(map(str, w))


def width_sort_key(widths: object) -> tuple[int, ...]:
    """Sort ``30-30`` before ``100-100``."""
    return tuple(widths_list(widths))


# --------------------------------------------------------------------------- configs


def settings_frame(run_configs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Run configs as expanded from the config file (gradsweep.config.expand_runs) in
    runs.parquet's columns: lets the workflow lay out figure pages before any run exists."""
    from gradsweep.aggregate import config_id, run_settings

    rows = []
    for cfg in run_configs:
        settings = run_settings(cfg["experiment"], dict(cfg))
        rows.append(
            {
                "run_id": f"{cfg['experiment']}/{cfg['run']}",
                "config_id": config_id(settings),
                **settings,
                "seed": cfg["seed"],
            }
        )
    return pd.DataFrame(rows)


def with_axes(runs: pd.DataFrame) -> pd.DataFrame:
    """runs plus the derived ``width`` axis (one width per layer, or the pattern)."""
    return runs.assign(width=runs["widths"].map(unit_width)) if "widths" in runs else runs


def varying_axes(runs: pd.DataFrame) -> list[str]:
    """The FACET_AXES that tell this experiment's configs apart, in FACET_AXES order; an axis
    that varies only together with earlier ones (e.g. epochs with depth) is left out."""
    df = with_axes(runs)
    chosen: list[str] = []
    groups = 1
    for axis in FACET_AXES:
        if axis not in df:
            continue
        n = df.groupby([*chosen, axis], dropna=False).ngroups
        if n > groups:
            chosen.append(axis)
            groups = n
    return chosen


def axis_order(axis: str, values: Iterable[Any]) -> list[Any]:
    values = list(pd.unique(pd.Series(list(values))))
    if axis == "activation":
        return ordered(values, ACTIVATION_ORDER)
    if axis == "init":
        return ordered(values, INIT_ORDER)
    if axis == "width":
        return sorted(values, key=lambda v: widths_list(str(v)))
    if axis == "optimizer":
        return ordered(values, OPTIMIZER_ORDER)
    if axis == "normalization":
        return ordered(values, NORMALIZATION_ORDER)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def axis_text(axis: str, value: Any) -> str:
    if isinstance(value, np.bool_ | np.str_):
        value = value.item()
    if (axis, value) in REMEDY_TEXT:
        return REMEDY_TEXT[(axis, value)]
    if isinstance(value, float) and value.is_integer() and axis != "learning_rate":
        value = int(value)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    name = AXIS_NAMES.get(axis, axis.replace("_", " "))
    if axis == "depth":
        return f"{text} hidden layer{'s' if text != '1' else ''}"
    return f"{name} {text}" if name else text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+]+", "_", text).strip("_")


# axes named in a remedies row label whenever they differ between the experiment's configs
LABEL_AXES = ["activation", "init", "optimizer", "normalization", "residual", "nesterov"]


def config_labels(configs: pd.DataFrame) -> list[str]:
    """Row label per config: the remedy-relevant settings that differ between the configs
    (activation, init, optimizer, normalization, residual, nesterov), then any other axis
    that varies (e.g. depth)."""
    df = with_axes(configs)
    axes = [a for a in LABEL_AXES if a in df and df[a].nunique(dropna=False) > 1]
    axes += [a for a in varying_axes(df) if a not in axes and a not in ("learning_rate",)]
    if "learning_rate" in df and df["learning_rate"].nunique(dropna=False) > 1:
        axes.append("learning_rate")
    labels = []
    for _, row in df.iterrows():
        parts = [axis_text(a, row[a]) for a in axes] or [widths_label(row.get("widths"))]
        labels.append(" · ".join(parts))
    return labels


@dataclass
class Page:
    """One image of a figure family: its file-name suffix, title and configs."""

    suffix: str
    title: str
    configs: pd.DataFrame  # one row per config (first run of each), in panel order
    fixed: dict[str, Any] = field(default_factory=dict)


def configs_of(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config of ``runs`` (its first run), with n_seeds, sorted by the axes."""
    df = with_axes(runs)
    n = df.groupby("config_id")["run_id"].size().rename("n_seeds")
    first = df.drop_duplicates("config_id").merge(n, left_on="config_id", right_index=True)
    keys = []
    for axis in varying_axes(df):
        order = {v: i for i, v in enumerate(axis_order(axis, first[axis]))}
        keys.append(first[axis].map(order).rename(f"_{axis}"))
    if keys:
        first = first.assign(**{k.name: k for k in keys}).sort_values([k.name for k in keys])
        first = first.drop(columns=[k.name for k in keys])
    return first.reset_index(drop=True)


def pages(runs: pd.DataFrame, max_panels: int = MAX_PANELS) -> list[Page]:
    """Split an experiment's configs into images of at most ``max_panels`` panels (one panel
    per config): by the values of the outermost varying axes first, then into numbered parts.
    One page (suffix ``""``) when they fit."""
    configs = configs_of(runs)
    axes = varying_axes(runs)
    split: list[str] = []
    inner = list(axes)

    def too_big(cfgs: pd.DataFrame, keys: list[str]) -> bool:
        if not keys:
            return len(cfgs) > max_panels
        return cfgs.groupby(keys, dropna=False).size().max() > max_panels

    while inner[2:] and too_big(configs, split):
        split.append(inner.pop())  # the outermost axis left
    result = []
    groups = configs.groupby(split, dropna=False, sort=False) if split else [((), configs)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        fixed = dict(zip(split, key, strict=True))
        parts = math.ceil(len(group) / max_panels)
        for k in range(parts):
            chunk = group.iloc[k * max_panels : (k + 1) * max_panels]
            suffix = "".join(f"-{axis}{_slug(str(fixed[axis]))}" for axis in reversed(split))
            title = " · ".join(axis_text(a, fixed[a]) for a in reversed(split))
            if parts > 1:
                suffix += f"-part{k + 1}"
                title += f" (part {k + 1} of {parts})"
            result.append(Page(suffix, title, chunk.reset_index(drop=True), fixed))
    if len(result) == 1 and not split:
        result[0].suffix = ""
    return result


def page_suffixes(runs: pd.DataFrame) -> list[str]:
    """The file-name suffixes of an experiment's pages, e.g. ``["-width16", "-width64"]``."""
    return [p.suffix for p in pages(runs)]


def page_runs(runs: pd.DataFrame, suffix: str) -> tuple[Page, pd.DataFrame]:
    """The page with that suffix and its runs (every seed of its configs)."""
    for page in pages(runs):
        if page.suffix == suffix:
            return page, runs[isin(runs["config_id"], page.configs["config_id"])]
    raise KeyError(f"no figure page {suffix!r}; pages: {page_suffixes(runs)}")


def panel_layout(configs: pd.DataFrame, axes: list[str]) -> tuple[int, int, list[tuple[int, int]]]:
    """(rows, columns, (row, column) per config): a full grid of the two innermost varying
    axes (columns = first) when the page's configs fill it, else wrapped rows of ≤ 4."""
    df = with_axes(configs)
    live = [a for a in axes if a in df and df[a].nunique(dropna=False) > 1]
    n = len(df)
    if len(live) >= 2:
        a, b = live[0], live[1]
        ca, cb = axis_order(a, df[a]), axis_order(b, df[b])
        if len(ca) * len(cb) == n and len(ca) <= 6 and len(live) == 2:
            pos = [(cb.index(r[b]), ca.index(r[a])) for _, r in df.iterrows()]
            return len(cb), len(ca), pos
    ncols = min(4, max(1, n))
    return math.ceil(max(n, 1) / ncols), ncols, [divmod(i, ncols) for i in range(n)]


def config_title(config: Mapping[str, Any], axes: Sequence[str], n_seeds: int) -> str:
    """Panel title: the values of the varying axes (all of them if none vary) and n."""
    shown = [a for a in axes if a in config] or ["activation", "init", "width"]
    parts = [axis_text(a, config.get(a)) for a in shown]
    if "depth" not in shown and "width" in shown:
        parts = [p for p in parts if not p.startswith("width")]
        parts.append(widths_label(config.get("widths")) + " units")
    head = " · ".join(parts[:2])
    rest = " · ".join(parts[2:])
    seeds = f"n = {n_seeds} seed{'s' if n_seeds != 1 else ''}"
    return "\n".join(t for t in (head, f"{rest} · {seeds}" if rest else seeds) if t)


def seed_band(df: pd.DataFrame, keys: Sequence[str], value: str = "grad_norm") -> pd.DataFrame:
    """Geometric mean, min and max of ``value`` over seeds (rows) for each ``keys`` group:
    the line and band a figure draws for a config."""
    v = pd.to_numeric(df[value], errors="coerce")
    d = df.assign(_log=np.log10(v.where(v > 0)))
    g = d.groupby(list(keys), sort=True)
    out = g.agg(_mean=("_log", "mean"), lo=(value, "min"), hi=(value, "max"), n=(value, "size"))
    out["gmean"] = 10 ** out.pop("_mean")
    return out.reset_index()
