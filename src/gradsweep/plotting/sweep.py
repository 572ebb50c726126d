"""Sweep-wide figures from ``results/<sweep>/runs.parquet`` and the probe traces: the per-layer
norms by activation and init, accuracy vs depth (every seed a dot) and the ratio heatmap at
initialisation and at the end."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradsweep import facets as F
from gradsweep.facets import ACTIVATION_ORDER, INIT_ORDER, ordered
from gradsweep.formatting import format_ratio
from gradsweep.plotting import data as D
from gradsweep.plotting.style import (
    PANEL_H,
    PANEL_W,
    PROBE_YLABEL,
    decade_limits,
    empty_note,
    facet_axes,
    heatmap_mesh,
    save,
    several_seeds,
    style,
    suptitle,
    with_datasets,
)
from gradsweep.verdicts import has_ratio


def init_vs_final(traces: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Probe bias-gradient norms of hidden layers at epoch 0 and at each run's last epoch."""
    tr = D.hidden_bias(traces, runs, "probe").merge(
        runs[["run_id", "activation", "init"]], on="run_id"
    )
    tr = D.finite_positive(tr, "grad_norm")
    last = tr.groupby("run_id")["epoch"].transform("max")
    at_init = tr[tr["epoch"] == 0].assign(when="at initialisation")
    finished = D.isin(tr["run_id"], runs.loc[runs["status"] != "diverged", "run_id"])
    at_end = tr[(tr["epoch"] == last) & (last > 0) & finished].assign(when="after training")
    return pd.concat([at_init, at_end], ignore_index=True)


WHEN_STYLES = {"at initialisation": (0, (3, 2)), "after training": "-"}
WHEN_MARKERS = {"at initialisation": "o", "after training": "s"}


def _depth_palette(depths: list[int]) -> dict[int, object]:
    """One rocket colour per depth (its palest shade left out)."""
    if len(depths) == 1:
        return {depths[0]: sns.color_palette("rocket", 3)[1]}
    return dict(zip(depths, sns.color_palette("rocket", len(depths) + 1)[:-1], strict=True))


def _when_line(color: object, when: str, **kwargs: object) -> dict[str, object]:
    """Line style of ``when``: dashed with open circles at initialisation, else solid squares."""
    open_marker = "white" if when == "at initialisation" else None
    return {
        "color": color,
        "ls": WHEN_STYLES[when],
        "marker": WHEN_MARKERS[when],
        "mfc": open_marker,
        **kwargs,
    }


def _grid_panel(ax: Axes, cell: pd.DataFrame, palette: dict[int, object]) -> None:
    """One activation × init: a line per depth and when, its min–max band where it has one."""
    if cell.empty:
        empty_note(ax, "no finite gradients")
    for (depth, when), d in cell.groupby(["depth", "when"]):
        if (d["hi"] > d["lo"]).any():
            ax.fill_between(
                d["layer"], d["lo"], d["hi"], color=palette[int(depth)], alpha=0.12, lw=0
            )
        line = _when_line(palette[int(depth)], str(when), ms=3.5, lw=1.5)
        ax.plot(d["layer"], d["grad_norm"], **line)


def _grid_legend(fig: Figure, palette: dict[int, object]) -> None:
    handles = [Line2D([], [], color=c, lw=2) for c in palette.values()]
    labels = [f"{d} hidden layer{'s' if d > 1 else ''}" for d in palette]
    handles += [Line2D([], [], **_when_line("0.3", w, ms=4)) for w in WHEN_STYLES]
    labels += list(WHEN_STYLES)
    fig.legend(
        handles,
        labels,
        loc="outside right center",
        frameon=False,
        title="median over runs\n(band: min–max)",
    )


def plot_activation_init_grid(
    traces: pd.DataFrame, runs: pd.DataFrame, out: str | Path
) -> pd.DataFrame:
    """One panel per activation × init pair of the sweep (activations down the rows);
    x = hidden layer, y = probe bias-gradient norm (log).

    One colour per depth; dashed = at initialisation, solid = after the last epoch.
    Median over seeds, widths and experiments sharing depth × activation × init; the band
    spans their min–max. Returns one row per line drawn with the number of runs in it.
    """
    df = init_vs_final(traces, runs)
    acts = ordered(runs["activation"], ACTIVATION_ORDER) or ["?"]
    inits = ordered(runs["init"], INIT_ORDER) or ["?"]
    depths = sorted(int(d) for d in runs["depth"].dropna().unique()) or [1]
    palette = _depth_palette(depths)
    agg = (
        df.groupby(["activation", "init", "depth", "when", "layer"], as_index=False)["grad_norm"]
        .agg(grad_norm="median", lo="min", hi="max")
        .sort_values("layer")
    )
    pairs = [
        (a, i)
        for a in acts
        for i in inits
        if ((runs["activation"] == a) & (runs["init"] == i)).any()
    ] or [("?", "?")]
    ncols = min(len(pairs), max(len(inits), 1), 5)
    limits = decade_limits(agg["grad_norm"])

    with style():
        nrows = math.ceil(len(pairs) / ncols)
        fig = Figure(
            figsize=(PANEL_W * 0.85 * ncols + 1.8, PANEL_H * nrows + 0.9),
            layout="constrained",
        )
        grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
        for ax in grid.ravel()[len(pairs) :]:
            ax.set_visible(False)
        for ax, (act, init) in zip(grid.ravel(), pairs, strict=False):
            ax.set_title(f"{act} · {init}")
            _grid_panel(ax, agg[(agg["activation"] == act) & (agg["init"] == init)], palette)
            ax.set_yscale("log")
            if limits is not None:
                ax.set_ylim(*limits)
        step = math.ceil(max(depths) / 12)
        grid[0, 0].set_xticks(range(1, max(depths) + 1, step))
        grid[0, 0].set_xlim(0.6, max(depths) + 0.4)
        fig.supxlabel("hidden layer (1 = next to the input)")
        fig.supylabel(PROBE_YLABEL)
        suptitle(
            fig, "Vanishing gradients: per-layer gradient norm by activation and initialisation"
        )
        _grid_legend(fig, palette)
        save(fig, out)
    counts = df.groupby(["activation", "init", "depth", "when"]).size().rename("n_runs")
    return counts.reset_index()


def _natural_key(text: str) -> list[object]:
    """Sort ``width 64`` before ``width 256``."""
    return [float(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+(?:\.\d+)?)", text))]


# drawn within a panel (x axis, hue, marker): every other setting that varies splits panels
IN_PANEL = ("activation", "depth", "init")


def accuracy_panels(runs: pd.DataFrame) -> pd.Series:
    """Panel label per run: the experiment plus every setting (width, learning rate, batch
    size, the remedies, ...) that tells its configs apart besides depth, activation and init,
    so an accuracy line never averages over those settings."""
    df = F.with_axes(runs)
    labels = pd.Series("", index=runs.index, dtype=object)
    for exp, sub in df.groupby("experiment", dropna=False):
        head = with_datasets(str(exp), sub)
        varying = [a for a in F.varying_axes(sub) if a not in IN_PANEL]
        for idx, row in sub.iterrows():
            extra = ", ".join(F.axis_text(a, row[a]) for a in varying)
            labels[idx] = f"{head}\n{extra}" if extra else head
    return labels


def plot_accuracy_vs_depth(runs: pd.DataFrame, out: str | Path) -> pd.DataFrame:
    """Best validation accuracy (%) vs number of hidden layers, hue = activation, style = init.

    One panel per experiment (split further by width / learning rate / batch size when the
    experiment varies them); mean over seeds with a min–max band, every seed a dot.
    Returns the config_ids drawn (one row per config) with their panel.
    """
    runs = runs.reset_index(drop=True)
    df = runs.assign(
        acc=pd.to_numeric(runs["best_val_acc"], errors="coerce") * 100,
        panel=accuracy_panels(runs),
    )
    diverged = df[df["status"] == "diverged"].groupby("panel").size()
    df = df[np.isfinite(df["acc"])]
    panels = sorted(accuracy_panels(runs).unique(), key=_natural_key) or ["(no runs)"]
    acts = ordered(runs["activation"], ACTIVATION_ORDER)
    inits = ordered(runs["init"], INIT_ORDER)
    palette = dict(zip(acts, sns.color_palette("colorblind", len(acts)), strict=True))
    marker_cycle = ["o", "s", "^", "D", "v", "P", "X"]
    dash_cycle = ["-", "--", ":", "-."]
    marks = {init: marker_cycle[k % len(marker_cycle)] for k, init in enumerate(inits)}
    dashes = {init: dash_cycle[k % len(dash_cycle)] for k, init in enumerate(inits)}

    with style():
        fig, axes = facet_axes(len(panels), ncols=min(3, len(panels)))
        for ax, panel in zip(axes, panels, strict=True):
            sub = df[df["panel"] == panel]
            title = panel
            if diverged.get(panel, 0):
                title += f"\n{diverged[panel]} diverged run(s) without accuracy"
            ax.set_title(title)
            if sub.empty:
                empty_note(ax, "no finite accuracies")
                continue
            for (act, init), d in sub.groupby(["activation", "init"]):
                g = d.groupby("depth")["acc"].agg(["mean", "min", "max"]).reset_index()
                color = palette[str(act)]
                ax.plot(
                    g["depth"],
                    g["mean"],
                    color=color,
                    ls=dashes[str(init)],
                    marker=marks[str(init)],
                    ms=5,
                    lw=1.5,
                )
                if (g["max"] > g["min"]).any():
                    ax.fill_between(g["depth"], g["min"], g["max"], color=color, alpha=0.15, lw=0)
                ax.scatter(
                    d["depth"], d["acc"], color=color, marker=marks[str(init)], s=10, alpha=0.6,
                    lw=0, zorder=3,
                )  # fmt: skip
            depths = sorted(int(v) for v in sub["depth"].unique())
            ax.set_xticks(depths if len(depths) <= 12 else depths[:: math.ceil(len(depths) / 12)])
            ax.set_xlim(depths[0] - 0.5, depths[-1] + 0.5)
            lo, hi = float(sub["acc"].min()), float(sub["acc"].max())
            if hi - lo < 2:  # a flat line or a single point: show at least 3 percentage points
                mid = (lo + hi) / 2
                ax.set_ylim(mid - 1.5, mid + 1.5)
            ax.set_xlabel("hidden layers")
        fig.supylabel("best validation accuracy (%)")
        suptitle(fig, "Accuracy vs depth (line: mean over seeds; band: min–max; dots: seeds)")
        handles = [Line2D([], [], color=palette[a], lw=2) for a in acts]
        handles += [Line2D([], [], color="0.3", ls=dashes[i], marker=marks[i]) for i in inits]
        labels = [f"activation: {a}" for a in acts] + [f"init: {i}" for i in inits]
        fig.legend(handles, labels, loc="outside right center", frameon=False)
        save(fig, out)
    cols = [c for c in ("config_id", "experiment", "panel") if c in df]
    return df[cols].drop_duplicates(cols[0]).reset_index(drop=True)


def heatmap_rows(runs: pd.DataFrame) -> pd.Series:
    """Row label per run of an experiment's heatmap: every varying axis but activation and
    init (depth or widths, learning rate, ...), so no cell mixes configs."""
    df = F.with_axes(runs)
    axes = [a for a in F.varying_axes(df) if a not in ("activation", "init")]
    if not axes:
        return df["widths"].map(F.widths_label)
    labels = []
    for _, row in df.iterrows():
        parts = []
        for a in axes:
            if a == "depth" and "width" in axes:
                continue
            if a == "width":
                parts.append(F.widths_label(row["widths"]))
            else:
                parts.append(F.axis_text(a, row[a]))
        labels.append(" · ".join(parts))
    return pd.Series(labels, index=runs.index)


def _row_order(sub: pd.DataFrame) -> list[str]:
    """Rows by depth, widths, then the varying axes in their display order (data.axis_order:
    SGD before Adam, no normalization before batch norm, no shortcut before residual, ...)."""
    df = sub.assign(_w=sub["widths"].map(F.width_sort_key))
    keys = ["depth", "_w"]
    for axis in F.varying_axes(sub):
        if axis in ("activation", "init", "depth", "width") or axis not in df:
            continue
        rank = {v: i for i, v in enumerate(F.axis_order(axis, df[axis]))}
        df[f"_{axis}"] = df[axis].map(lambda v, r=rank: r.get(v, r.get(str(v), len(r))))
        keys.append(f"_{axis}")
    return list(pd.unique(df.sort_values(keys, kind="stable")["row"]))


def _grid_axes(sub: pd.DataFrame) -> tuple[str, str] | None:
    """The two settings to lay an experiment's cells out by (depth rows × the other's columns)
    when it has one activation × init column and its rows are the product of two settings:
    edge_of_chaos's 10 depths × 12 σ_w² make a 10 × 12 grid, not 120 rows × 1 column."""
    if sub["column"].nunique() != 1:
        return None
    axes = [a for a in F.varying_axes(sub) if a not in ("activation", "init")]
    if len(axes) != 2 or "width" in axes or not set(axes) <= set(sub):
        return None
    keys = sub[axes].astype(str)
    if len(keys.drop_duplicates()) != keys.nunique().prod():  # not a full product
        return None
    return axes[0], axes[1]


def _layout(sub: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    """Where each (row, column) cell of the experiment goes: its drawn row ``y`` and column
    ``x`` (the row and column themselves, or the two settings of _grid_axes), in order."""
    cells = sub.drop_duplicates(["row", "column"])
    axes = _grid_axes(sub)
    if axes is None:
        y, x = cells["row"], cells["column"]
        y_order, x_order = rows, columns
    else:
        a, b = axes
        y = cells[a].map(lambda v: F.axis_text(a, v))
        x = cells[b].map(lambda v: F.axis_text(b, v))
        y_order = [F.axis_text(a, v) for v in F.axis_order(a, cells[a])]
        x_order = [F.axis_text(b, v) for v in F.axis_order(b, cells[b])]
    out = pd.DataFrame({"row": cells["row"], "column": cells["column"], "y": y, "x": x})
    out.attrs.update(y_order=y_order, x_order=x_order, title="" if axes is None else columns[0])
    return out


WHENS = {"grad_ratio_init": "at initialisation", "grad_ratio_final": "after the last epoch"}


def _ratio_frame(runs: pd.DataFrame, experiments: list[str]) -> pd.DataFrame:
    """Per run and WHENS column one row: its heatmap row and column, ratio and log10 ratio."""
    parts = []
    for exp in experiments:
        sub = runs[runs["experiment"] == exp]
        if sub.empty:
            continue
        sub = sub.assign(
            row=heatmap_rows(sub),
            column=sub["activation"].astype(str) + "\n" + sub["init"].astype(str),
        )
        for col, when in WHENS.items():
            ratio = pd.to_numeric(sub[col], errors="coerce")
            parts.append(
                sub.assign(
                    when=when,
                    ratio=ratio,
                    log_ratio=np.log10(ratio.where(np.isfinite(ratio) & (ratio > 0))),
                    has_ratio=sub["depth"].map(has_ratio) if "depth" in sub else True,
                )
            )
    return pd.concat(parts, ignore_index=True) if parts else runs.assign(row=[], column=[])


def _cell_text(log: float, lo: float, hi: float, n: float, one_layer: bool = False) -> str:
    """The geometric mean (∞ or — without one; n/a for one hidden layer, which has no
    ratio) and, over several seeds, their min–max."""
    if one_layer:
        return "n/a\none layer"
    missing = "∞" if hi == np.inf else "—"
    text = format_ratio(10**log) if pd.notna(log) else missing
    if n > 1 and lo != hi:
        text += f"\n{format_ratio(lo)}–{format_ratio(hi)}"
    return text


def _ratio_heatmap(
    ax: Axes,
    w: pd.DataFrame,
    rows: list[str],
    columns: list[str],
    layout: pd.DataFrame,
    cmap: object,
    vmax: float,
    *,
    experiment: str,
    when: str,
) -> list[dict[str, object]]:
    """One experiment's heatmap at one moment (``w``: its rows of _ratio_frame), every cell
    labelled and placed as ``layout`` says; returns the cells (row by row of ``rows``)."""
    stats = w.groupby(["row", "column"]).agg(
        log=("log_ratio", "mean"),
        lo=("ratio", "min"),
        hi=("ratio", "max"),
        n=("ratio", "size"),
        ratio=("has_ratio", "any"),
    )
    grid = stats["log"].unstack("column").reindex(index=rows, columns=columns)
    lo = stats["lo"].unstack("column").reindex(index=rows, columns=columns)
    hi = stats["hi"].unstack("column").reindex(index=rows, columns=columns)
    n = stats["n"].unstack("column").reindex(index=rows, columns=columns)
    has = stats["ratio"].unstack("column").reindex(index=rows, columns=columns)
    y_order, x_order = layout.attrs["y_order"], layout.attrs["x_order"]
    place = layout.set_index(["row", "column"])
    shown = (
        stats["log"].to_frame().join(place).pivot_table("log", "y", "x", dropna=False)
        if len(stats)
        else pd.DataFrame()
    )
    shown = shown.reindex(index=y_order, columns=x_order).to_numpy(dtype=float)
    heatmap_mesh(ax, shown, cmap, -vmax, vmax)
    ax.set_xticks(np.arange(len(x_order)) + 0.5, x_order)
    ax.set_yticks(np.arange(len(y_order)) + 0.5, y_order, va="center")
    cells = []
    for r in rows:
        for c in columns:
            if pd.isna(n.loc[r, c]):
                continue
            v = grid.loc[r, c]
            one_layer = not bool(has.loc[r, c])
            text = _cell_text(v, lo.loc[r, c], hi.loc[r, c], n.loc[r, c], one_layer)
            i, j = y_order.index(place.loc[(r, c), "y"]), x_order.index(place.loc[(r, c), "x"])
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=6.5)
            cells.append(
                {"experiment": experiment, "row": r, "column": c, "when": when,
                 "n": int(n.loc[r, c]), "gmean": 10**v if pd.notna(v) else np.nan,
                 "min": lo.loc[r, c], "max": hi.loc[r, c], "text": text}
            )  # fmt: skip
    ax.grid(False)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", labelrotation=0, labelsize=7)
    ax.tick_params(axis="y", labelrotation=0, labelsize=7)
    return cells


def _block(
    sub: pd.DataFrame, column_order: list[str]
) -> tuple[list[str], list[str], pd.DataFrame] | None:
    """An experiment's rows, its activation × init columns (those it ran) and _layout."""
    if sub.empty:
        return None
    rows = _row_order(sub)
    columns = [c for c in column_order if c in set(sub["column"])]
    return rows, columns, _layout(sub, rows, columns)


def plot_ratio_heatmap(runs: pd.DataFrame, out: str | Path) -> pd.DataFrame:
    """log10(grad ratio) at initialisation (left) and after the last epoch (right), rows =
    the experiment's other varying settings (depth, widths, ...), columns = activation × init;
    one block per experiment. An experiment of one activation × init whose rows are the
    product of two settings (edge_of_chaos: depth × σ_w²) is drawn as a 2-D grid of them.

    Cells show the geometric mean over seeds and, with several seeds, their min–max. Returns
    one row per cell (experiment, row, column, when, n, gmean, min, max, text).
    """
    runs = runs.reset_index(drop=True)
    experiments = sorted(runs["experiment"].dropna().unique()) or ["(none)"]
    acts = ordered(runs["activation"], ACTIVATION_ORDER)
    inits = ordered(runs["init"], INIT_ORDER)
    column_order = [f"{a}\n{i}" for a in acts for i in inits]
    df = _ratio_frame(runs, experiments)
    finite = df["log_ratio"].dropna() if len(df) else pd.Series(dtype=float)
    vmax = max(float(finite.abs().max()) if len(finite) else 1.0, 0.5)
    cmap = sns.color_palette("vlag", as_cmap=True)
    blocks = {e: _block(df[df["experiment"] == e], column_order) for e in experiments}
    n_rows = [max(1, len(b[2].attrs["y_order"])) if b else 1 for b in blocks.values()]
    n_columns = max([len(b[2].attrs["x_order"]) for b in blocks.values() if b] or [1])
    cell_w, cell_h = 1.2, 0.5  # inches
    cells = []

    with style():
        fig = Figure(
            figsize=(2 * cell_w * n_columns + 5.5, cell_h * sum(n_rows) + 1.2 * len(n_rows) + 1),
            layout="constrained",
        )
        axes = fig.subplots(len(experiments), 2, squeeze=False, height_ratios=n_rows)
        for (ax_init, ax_end), exp in zip(axes, experiments, strict=True):
            sub = df[df["experiment"] == exp]
            if not blocks[exp]:
                empty_note(ax_init, "no runs")
                ax_end.set_visible(False)
                continue
            rows, columns, layout = blocks[exp]
            name = with_datasets(str(exp), sub)
            for ax, when in zip((ax_init, ax_end), WHENS.values(), strict=True):
                w = sub[sub["when"] == when]
                cells += _ratio_heatmap(
                    ax, w, rows, columns, layout, cmap, vmax, experiment=exp, when=when
                )
                ax.set_title(f"{name} — {when}")
                ax.set_xlabel(layout.attrs["title"].replace("\n", " / "))
            ax_end.set_yticklabels([])
        for ax in axes[-1]:
            if not ax.get_xlabel():  # a 2-D grid's axes name its one activation / init
                ax.set_xlabel("activation / weight init")
        mappable = ScalarMappable(norm=Normalize(-vmax, vmax), cmap=cmap)
        cbar = fig.colorbar(mappable, ax=list(axes.ravel()), shrink=min(1.0, 4 / len(axes) + 0.3))
        cbar.set_label("log₁₀(grad ratio)\n> 0 vanishing · < 0 exploding")
        suptitle(
            fig,
            "Gradient ratio last ÷ first hidden layer, at initialisation and after training\n"
            + (
                "(geometric mean over seeds; second line: min–max)"
                if several_seeds(runs)
                else "(one seed per config)"
            ),
        )
        save(fig, out)
    return pd.DataFrame(cells)
