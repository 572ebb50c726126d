"""The tidy data layer of the figures: ``runs.parquet`` / ``traces.parquet`` (columns:
docs/outputs.md) into the long tables figures draw, and how an experiment's configs are laid
out into panels and pages.

Every setting is a column of runs.parquet (``gradsweep.settings.SETTINGS``); nothing is parsed
back out of a run name. How runs group into configs and how settings read: gradsweep.facets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gradsweep.facets import (
    axis_order,
    axis_text,
    configs_of,
    varying_axes,
    widths_label,
    with_axes,
)
from gradsweep.io import TRACES_SCHEMA, read_run_traces, trace_run_id

MAX_PANELS = 24  # per image (issue 13: figures must stay readable at 1,000 runs)
MAX_HEIGHT_PX = 6000
TRACE_COLUMNS = ("run_id", "epoch", "step", "layer", "param", "grad_norm", "source")

# --------------------------------------------------------------------------- reading


def trace_files(path: str | Path | Sequence[str | Path]) -> list[Path]:
    """The trace files behind ``path``: a list of files, one file, or a folder of them (a
    sweep's ``traces/``, one ``experiment=<name>/`` in it), in sorted order."""
    if isinstance(path, list | tuple):
        return [Path(p) for p in path]
    path = Path(path)
    return sorted(path.rglob("*.parquet")) if path.is_dir() else [path]


def iter_traces(
    path: str | Path | Sequence[str | Path],
    *,
    experiment: str | None = None,
    source: str | None = None,
    param: str | None = "bias",
    columns: Sequence[str] = TRACE_COLUMNS,
    run_ids: Iterable[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """The trace rows and columns a figure needs, one file (one run) at a time, so that a
    figure can reduce each run's lines to what it draws before reading the next: only the
    files of ``run_ids`` / ``experiment`` (a per-run file's run from its path,
    ``gradsweep.io.trace_run_id``), only their rows of ``source`` and ``param`` (pyarrow
    filter push-down, row group by row group). Files without rows yield nothing."""
    wanted = None if run_ids is None else sorted(set(run_ids))
    where = None
    for col, val in (("source", source), ("param", param)):
        if val is not None:
            cond = ds.field(col) == val
            where = cond if where is None else where & cond
    names = [c for c in columns if c != "experiment"]
    for file in trace_files(path):
        if file.parent.name.startswith("experiment="):  # a sweep's per-run file: skip others
            run_id = trace_run_id(file)
            if experiment is not None and not run_id.startswith(f"{experiment}/"):
                continue
            if wanted is not None and run_id not in wanted:
                continue
            table = read_run_traces(file, names, where, dictionary=True)
        else:  # any other file (one run's, or several): its rows of those runs
            cond = where if wanted is None else _and(where, ds.field("run_id").isin(wanted))
            table = read_run_traces(file, list(dict.fromkeys([*names, "run_id"])), cond,
                                    dictionary=True)  # fmt: skip
            if experiment is not None:
                ids = table["run_id"].cast(pa.string())  # starts_with takes no dictionary
                table = table.filter(pc.starts_with(ids, f"{experiment}/"))
            table = table.select(names)
        if table.num_rows:
            yield table.to_pandas()  # run_id, source, param: categoricals (dictionary=True)


def _and(a: ds.Expression | None, b: ds.Expression) -> ds.Expression:
    return b if a is None else a & b


def read_traces(
    path: str | Path | Sequence[str | Path],
    *,
    experiment: str | None = None,
    source: str | None = None,
    param: str | None = "bias",
    columns: Sequence[str] = TRACE_COLUMNS,
    run_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """:func:`iter_traces`' rows in one table (run_id, source and param as categoricals)."""
    parts = list(iter_traces(path, experiment=experiment, source=source, param=param,
                             columns=columns, run_ids=run_ids))  # fmt: skip
    if not parts:
        names = [c for c in columns if c != "experiment"]
        return read_run_traces_empty(names)
    df = pd.concat(parts, ignore_index=True)
    for col in ("run_id", "source", "param"):
        if col in df:
            df[col] = df[col].astype("category")
    return df


def read_run_traces_empty(columns: Sequence[str]) -> pd.DataFrame:
    """No trace rows, with ``columns`` typed as the trace files'."""
    return pa.schema([TRACES_SCHEMA.field(c) for c in columns]).empty_table().to_pandas()


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


# --------------------------------------------------------------------------- configs


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+]+", "_", text).strip("_")


@dataclass
class Page:
    """One image of a figure family: its file-name suffix, title and configs."""

    suffix: str
    title: str
    configs: pd.DataFrame  # one row per config (first run of each), in panel order
    fixed: dict[str, Any] = field(default_factory=dict)


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
