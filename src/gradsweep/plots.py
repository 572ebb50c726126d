"""Figures from the aggregated sweep tables (columns: docs/outputs.md).

Every function takes DataFrames and an output path, draws on a standalone
``matplotlib.figure.Figure`` (rendered by Agg, never registered with pyplot, so
nothing is left open and the caller's backend is untouched) and saves a PNG.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from gradsweep.table import format_ratio

DPI = 200
PANEL_W = 3.4  # inches per facet
PANEL_H = 2.6
MAX_STEP_POINTS = 400  # per line, after smoothing
DIVERGED_COLOR = "#b2182b"
ACTIVATION_ORDER = ["sigmoid", "tanh", "relu"]
INIT_ORDER = [
    "normal",
    "scaled_normal",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
]
PROBE_YLABEL = "‖∂C/∂b‖ on probe set (log)"
STEP_YLABEL = "‖∂C/∂b‖ on mini-batch (log)"

RUN_COLUMNS = ["run_id", "experiment", "run", "dataset", "depth", "widths", "activation", "init"]


# --------------------------------------------------------------------------- helpers


@contextmanager
def _style() -> Iterator[None]:
    rc = {"savefig.dpi": DPI, "figure.dpi": 100, "axes.titlesize": 9, "axes.titlepad": 4}
    with (
        sns.axes_style("whitegrid"),
        sns.plotting_context("paper", font_scale=1.1),
        mpl.rc_context(rc),
    ):
        yield


def _save(fig: Figure, out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    fig.clear()


def _ordered(values: Sequence[object], preferred: Sequence[str]) -> list[str]:
    present = [str(v) for v in pd.unique(pd.Series(values).dropna())]
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def _isin(s: pd.Series, values: object) -> pd.Series:
    """``s.isin`` via a set of unique values (pandas' Arrow-string isin is slow for long lists)."""
    return s.isin(set(pd.unique(pd.Series(values))))


def _finite_positive(df: pd.DataFrame, col: str) -> pd.DataFrame:
    v = pd.to_numeric(df[col], errors="coerce")
    return df[np.isfinite(v) & (v > 0)]


def _layer_colors(n: int) -> list[tuple[float, float, float]]:
    """Sequential palette, dark (input side) to light green (output side); no pale yellow."""
    cmap = mpl.colormaps["viridis"]
    if n <= 1:
        return [cmap(0.0)[:3]]
    return [cmap(0.85 * i / (n - 1))[:3] for i in range(n)]


def widths_label(widths: object) -> str:
    """``"100-100-100"`` -> ``"3 × 100"``; mixed widths are kept as ``500-300-150-50``."""
    if not isinstance(widths, str) or not widths:
        return "?"
    parts = [p for p in re.split(r"[-x]", widths) if p]
    if len(parts) > 1 and len(set(parts)) == 1:
        return f"{len(parts)} × {parts[0]}"
    return "-".join(parts)


def _extra_settings(run: str, seed: object) -> str:
    """Training settings appended to the run name after ``-s<seed>`` (see docs/outputs.md)."""
    m = re.search(rf"-s{seed}(-.*)?$", run) if run else None
    if not m or not m.group(1):
        return ""
    pairs = re.findall(r"-([A-Za-z_]+)(.+?)(?=-[A-Za-z_]|$)", m.group(1))
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in pairs)


def is_diverged(row: pd.Series) -> bool:
    return str(row.get("status", "ok")) == "diverged"


def run_title(row: pd.Series) -> str:
    """Readable multi-line panel title for one run (a row of runs.parquet)."""
    seed = row.get("seed")
    seed_txt = f"seed {int(seed)}" if seed is not None and not pd.isna(seed) else ""
    lines = [
        f"{row.get('activation', '?')} · {row.get('init', '?')}",
        " · ".join(t for t in (widths_label(row.get("widths")) + " units", seed_txt) if t),
    ]
    extra = _extra_settings(str(row.get("run", "")), int(seed) if seed_txt else "")
    if extra:
        lines.append(extra)
    if is_diverged(row):
        lines[0] += " — DIVERGED"
    return "\n".join(lines)


def _suptitle(fig: Figure, text: str) -> None:
    """Figure title wrapped to the figure width (constrained layout does not widen it)."""
    chars = max(24, int(fig.get_figwidth() * 8.5))
    lines = [textwrap.fill(line, chars) for line in text.split("\n")]
    fig.suptitle("\n".join(lines), fontsize=11)


def _empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _facet_axes(n: int, ncols: int | None = None, extra_h: float = 0.0) -> tuple[Figure, list]:
    ncols = ncols or min(4, max(1, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(
        figsize=(PANEL_W * ncols + 1.6, PANEL_H * nrows + 0.9 + extra_h), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _experiment_runs(runs: pd.DataFrame, experiment: str | None) -> pd.DataFrame:
    if experiment is not None and "experiment" in runs.columns:
        runs = runs[runs["experiment"] == experiment]
    keys = [k for k in ("depth", "widths", "activation", "init", "seed", "run") if k in runs]
    return runs.sort_values(keys, kind="stable")


def _decade_limits(values: pd.Series) -> tuple[float, float] | None:
    """Log-axis limits on whole decades, so every panel shows labelled major ticks."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.empty:
        return None
    lo = math.floor(math.log10(float(v.min())))
    hi = math.ceil(math.log10(float(v.max())))
    if hi - lo < 2:  # at least two labelled decades
        lo, hi = (lo - 1, hi) if hi - lo == 1 else (lo - 1, hi + 1)
    return 10.0**lo, 10.0**hi


def _mark_divergence(ax: Axes, x: float | None) -> None:
    if x is None or not np.isfinite(x):
        return
    ax.axvline(x, color=DIVERGED_COLOR, ls="--", lw=1)
    ax.annotate(
        "diverged",
        (x, 1),
        xycoords=("data", "axes fraction"),
        xytext=(-3, -3),
        textcoords="offset points",
        ha="right",
        va="top",
        color=DIVERGED_COLOR,
        fontsize=8,
    )


def _layer_legend(fig: Figure, n_layers: int, title: str = "hidden layer") -> None:
    colors = _layer_colors(n_layers)
    handles = [Line2D([], [], color=c, lw=2) for c in colors]
    labels = [f"{title} {i}" for i in range(1, n_layers + 1)]
    labels[0] += " (input side)"
    if n_layers > 1:
        labels[-1] += " (output side)"
    fig.legend(handles, labels, loc="outside right center", frameon=False)


def _divergence_points(traces: pd.DataFrame, runs: pd.DataFrame, x: str) -> dict[str, float]:
    """Last epoch/step recorded for each diverged run (where its trace turns NaN/inf)."""
    div = runs.loc[runs["status"] == "diverged", "run_id"]
    rows = traces[_isin(traces["run_id"], div)]
    return rows.groupby("run_id")[x].max().astype(float).to_dict()


def _title_axes(ax: Axes, row: pd.Series) -> None:
    ax.set_title(run_title(row), color=DIVERGED_COLOR if is_diverged(row) else "black")


# --------------------------------------------------------------------------- data loading


def read_traces(
    path: str | Path | Sequence[str | Path],
    *,
    experiment: str | None = None,
    source: str | None = None,
    param: str | None = "bias",
    columns: Sequence[str] = ("run_id", "epoch", "step", "layer", "param", "grad_norm", "source"),
) -> pd.DataFrame:
    """Read only the trace rows and columns a figure needs (pyarrow filter push-down)."""
    paths = [str(p) for p in path] if isinstance(path, list | tuple) else str(path)
    dataset = ds.dataset(paths, format="parquet")
    names = set(dataset.schema.names)
    expr = None
    for col, val in (("experiment", experiment), ("source", source), ("param", param)):
        if val is not None and col in names:  # per-run files have no experiment column
            cond = ds.field(col) == val
            expr = cond if expr is None else expr & cond
    table = dataset.to_table(columns=[c for c in columns if c in names], filter=expr)
    df = table.to_pandas()
    if experiment is not None and "experiment" not in names and "run_id" in df:
        df = df[df["run_id"].astype(str).str.startswith(f"{experiment}/")]
    return df


# --------------------------------------------------------------------------- figures


def plot_gradient_norms(
    traces: pd.DataFrame, runs: pd.DataFrame, out: str | Path, experiment: str | None = None
) -> None:
    """One panel per run: probe bias-gradient norm per hidden layer vs epoch (log y)."""
    runs = _experiment_runs(runs, experiment)
    tr = traces[(traces["source"] == "probe") & (traces["param"] == "bias")]
    tr = tr[_isin(tr["run_id"], runs["run_id"])].merge(runs[["run_id", "depth"]], on="run_id")
    tr = tr[(tr["layer"] >= 1) & (tr["layer"] <= tr["depth"])]
    diverged_at = _divergence_points(tr, runs, "epoch")
    tr = _finite_positive(tr, "grad_norm").sort_values(["run_id", "layer", "epoch"])
    max_depth = int(runs["depth"].max()) if len(runs) else 1
    colors = _layer_colors(max_depth)
    ok_ids = runs.loc[runs["status"] != "diverged", "run_id"]
    shared = _decade_limits(tr.loc[_isin(tr["run_id"], ok_ids), "grad_norm"])
    by_run = dict(tuple(tr.groupby("run_id", sort=False)))
    max_epoch = int(tr["epoch"].max()) if len(tr) else 1

    with _style():
        fig, axes = _facet_axes(max(1, len(runs)))
        if runs.empty:
            _empty_note(axes[0], f"no runs for experiment {experiment!r}")
        for ax, (_, row) in zip(axes, runs.iterrows(), strict=False):
            _title_axes(ax, row)
            data = by_run.get(row["run_id"])
            if data is None or data.empty:
                _empty_note(ax, "no finite probe gradients")
                continue
            for layer, d in data.groupby("layer"):
                ax.plot(
                    d["epoch"],
                    d["grad_norm"],
                    color=colors[int(layer) - 1],
                    lw=1.6,
                    marker="o" if max_epoch <= 30 else None,
                    ms=3,
                )
            ax.set_yscale("log")
            own = shared if not is_diverged(row) else _decade_limits(data["grad_norm"])
            if own is not None:
                ax.set_ylim(*own)
            _mark_divergence(ax, diverged_at.get(row["run_id"]))
            ax.set_xlim(-0.3, max_epoch + 0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        fig.supxlabel("epoch (0 = at initialisation)")
        fig.supylabel(PROBE_YLABEL)
        title = f"Per-layer gradient norms during training — {experiment or 'all runs'}"
        if len(runs) and "dataset" in runs:
            title += f" ({', '.join(map(str, runs['dataset'].dropna().unique()))})"
        _suptitle(fig, title)
        _layer_legend(fig, max_depth)
        _save(fig, out)


def smooth_steps(d: pd.DataFrame, max_points: int = MAX_STEP_POINTS) -> tuple[pd.DataFrame, int]:
    """Rolling median (window ≈ n / max_points · 2) and downsampling to ≤ max_points rows."""
    n = len(d)
    if n <= max_points:
        return d, 1
    stride = math.ceil(n / max_points)
    window = 2 * stride + 1
    sm = d.assign(grad_norm=d["grad_norm"].rolling(window, center=True, min_periods=1).median())
    return sm.iloc[::stride], window


def plot_step_traces(
    traces: pd.DataFrame, runs: pd.DataFrame, out: str | Path, experiment: str | None = None
) -> None:
    """One panel per run: mini-batch bias-gradient norm per hidden layer vs SGD step (log y)."""
    runs = _experiment_runs(runs, experiment)
    tr = traces[(traces["source"] == "step") & (traces["param"] == "bias")]
    tr = tr[_isin(tr["run_id"], runs["run_id"])].merge(runs[["run_id", "depth"]], on="run_id")
    tr = tr[(tr["layer"] >= 1) & (tr["layer"] <= tr["depth"])]
    diverged_at = _divergence_points(tr, runs, "step")
    traced = runs[_isin(runs["run_id"], tr["run_id"])]  # runs with step_every off have no rows
    n_untraced = len(runs) - len(traced)
    tr = _finite_positive(tr, "grad_norm").sort_values(["run_id", "layer", "step"])
    max_depth = int(runs["depth"].max()) if len(runs) else 1
    colors = _layer_colors(max_depth)
    ok_ids = runs.loc[runs["status"] != "diverged", "run_id"]
    windows: set[int] = set()
    smoothed = []
    for _, d in tr.groupby(["run_id", "layer"], sort=False):
        d, window = smooth_steps(d)
        windows.add(window)
        smoothed.append(d)
    tr = pd.concat(smoothed) if smoothed else tr
    shared = _decade_limits(tr.loc[_isin(tr["run_id"], ok_ids), "grad_norm"])
    by_run = dict(tuple(tr.groupby("run_id", sort=False)))
    max_step = float(tr["step"].max()) if len(tr) else 1.0

    with _style():
        fig, axes = _facet_axes(max(1, len(traced)))
        if traced.empty:
            _empty_note(axes[0], "no step traces recorded for these runs")
        for ax, (_, row) in zip(axes, traced.iterrows(), strict=False):
            _title_axes(ax, row)
            data = by_run.get(row["run_id"])
            if data is None or data.empty:
                _empty_note(ax, "no finite step gradients")
                continue
            for layer, d in data.groupby("layer"):
                ax.plot(d["step"], d["grad_norm"], color=colors[int(layer) - 1], lw=1.2)
            ax.set_yscale("log")
            own = shared if not is_diverged(row) else _decade_limits(data["grad_norm"])
            if own is not None:
                ax.set_ylim(*own)
            ax.set_xlim(0, max_step * 1.02)
            _mark_divergence(ax, diverged_at.get(row["run_id"]))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        title = f"Per-layer mini-batch gradient norms — {experiment or 'all runs'}"
        notes = []
        if max(windows, default=1) > 1:
            notes.append(f"lines: rolling median over {max(windows)} traced steps")
        if n_untraced and len(traced):
            notes.append(f"{n_untraced} run(s) without step traces not shown")
        if notes:
            title += "\n(" + "; ".join(notes) + ")"
        fig.supxlabel("SGD step (mini-batch updates so far)")
        fig.supylabel(STEP_YLABEL)
        _suptitle(fig, title)
        _layer_legend(fig, max_depth)
        _save(fig, out)


def _thousands(x: float, _pos: object = None) -> str:
    """Axis label for step counts: 0, 500, 5k, 12.5k, 1.2M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def _init_vs_final(traces: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Probe bias-gradient norms of hidden layers at epoch 0 and at each run's last epoch."""
    tr = traces[(traces["source"] == "probe") & (traces["param"] == "bias")]
    tr = tr.merge(runs[["run_id", "depth", "activation", "init"]], on="run_id")
    tr = tr[(tr["layer"] >= 1) & (tr["layer"] <= tr["depth"])]
    tr = _finite_positive(tr, "grad_norm")
    last = tr.groupby("run_id")["epoch"].transform("max")
    at_init = tr[tr["epoch"] == 0].assign(when="at initialisation")
    finished = _isin(tr["run_id"], runs.loc[runs["status"] != "diverged", "run_id"])
    at_end = tr[(tr["epoch"] == last) & (last > 0) & finished].assign(when="after training")
    return pd.concat([at_init, at_end], ignore_index=True)


def plot_activation_init_grid(traces: pd.DataFrame, runs: pd.DataFrame, out: str | Path) -> None:
    """Rows = activation, columns = init; x = hidden layer, y = probe bias-gradient norm (log).

    One colour per depth; dashed = at initialisation, solid = after the last epoch.
    Median over seeds, widths and experiments sharing depth × activation × init.
    """
    df = _init_vs_final(traces, runs)
    acts = _ordered(runs["activation"], ACTIVATION_ORDER) or ["?"]
    inits = _ordered(runs["init"], INIT_ORDER) or ["?"]
    depths = sorted(int(d) for d in runs["depth"].dropna().unique()) or [1]
    palette = dict(zip(depths, sns.color_palette("rocket", len(depths) + 1)[:-1], strict=True))
    if len(depths) == 1:
        palette = {depths[0]: sns.color_palette("rocket", 3)[1]}
    agg = (
        df.groupby(["activation", "init", "depth", "when", "layer"], as_index=False)["grad_norm"]
        .median()
        .sort_values("layer")
    )
    limits = _decade_limits(agg["grad_norm"])
    styles = {"at initialisation": (0, (3, 2)), "after training": "-"}
    markers = {"at initialisation": "o", "after training": "s"}

    with _style():
        fig = Figure(
            figsize=(PANEL_W * 0.85 * len(inits) + 1.8, PANEL_H * len(acts) + 0.9),
            layout="constrained",
        )
        axes = fig.subplots(len(acts), len(inits), squeeze=False, sharex=True, sharey=True)
        for i, act in enumerate(acts):
            for j, init in enumerate(inits):
                ax = axes[i, j]
                ax.set_title(f"{act} · {init}")
                cell = agg[(agg["activation"] == act) & (agg["init"] == init)]
                if cell.empty:
                    ax.text(
                        0.5,
                        0.5,
                        "not in sweep",
                        transform=ax.transAxes,
                        ha="center",
                        va="center",
                        color="0.5",
                    )
                for (depth, when), d in cell.groupby(["depth", "when"]):
                    ax.plot(
                        d["layer"],
                        d["grad_norm"],
                        color=palette[int(depth)],
                        ls=styles[str(when)],
                        marker=markers[str(when)],
                        ms=3.5,
                        lw=1.5,
                        mfc="white" if when == "at initialisation" else None,
                    )
                ax.set_yscale("log")
                if limits is not None:
                    ax.set_ylim(*limits)
        step = math.ceil(max(depths) / 12)
        axes[0, 0].set_xticks(range(1, max(depths) + 1, step))
        axes[0, 0].set_xlim(0.6, max(depths) + 0.4)
        fig.supxlabel("hidden layer (1 = next to the input)")
        fig.supylabel(PROBE_YLABEL)
        _suptitle(
            fig, "Vanishing gradients: per-layer gradient norm by activation and initialisation"
        )
        handles = [Line2D([], [], color=palette[d], lw=2) for d in depths]
        labels = [f"{d} hidden layer{'s' if d > 1 else ''}" for d in depths]
        handles += [
            Line2D(
                [],
                [],
                color="0.3",
                ls=styles[w],
                marker=markers[w],
                ms=4,
                mfc="white" if w == "at initialisation" else None,
            )
            for w in styles
        ]
        labels += list(styles)
        fig.legend(
            handles, labels, loc="outside right center", frameon=False, title="median over seeds"
        )
        _save(fig, out)


def _width_sort_key(v: object) -> object:
    if isinstance(v, str):
        return tuple(int(p) for p in re.split(r"[-x]", v) if p.isdigit())
    return v


def _natural_key(text: str) -> list[object]:
    """Sort ``width 64`` before ``width 256``."""
    return [float(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+(?:\.\d+)?)", text))]


def _unit_width(widths: object) -> str:
    """Per-layer width when all hidden layers are equally wide, else ``"mixed"``."""
    parts = [p for p in re.split(r"[-x]", str(widths)) if p]
    return parts[0] if parts and len(set(parts)) == 1 else "mixed"


PANEL_SETTINGS = {"width": "width", "learning_rate": "learning rate", "batch_size": "batch size"}


def accuracy_panels(runs: pd.DataFrame) -> pd.Series:
    """Panel label per run: the experiment plus every setting (width, learning rate, batch
    size) that varies inside it, so an accuracy line never averages over those settings."""
    df = runs.assign(width=runs["widths"].map(_unit_width))
    labels = pd.Series("", index=runs.index, dtype=object)
    for exp, sub in df.groupby("experiment", dropna=False):
        datasets = ", ".join(map(str, sub["dataset"].dropna().unique()))
        head = f"{exp} ({datasets})" if datasets else str(exp)
        varying = [c for c in PANEL_SETTINGS if c in sub and sub[c].nunique() > 1]
        for idx, row in sub.iterrows():
            extra = ", ".join(
                f"{PANEL_SETTINGS[c]} {row[c]:g}"
                if isinstance(row[c], float)
                else f"{PANEL_SETTINGS[c]} {row[c]}"
                for c in varying
            )
            labels[idx] = f"{head}\n{extra}" if extra else head
    return labels


def plot_accuracy_vs_depth(runs: pd.DataFrame, out: str | Path) -> None:
    """Best validation accuracy (%) vs number of hidden layers, hue = activation, style = init.

    One panel per experiment (split further by width / learning rate / batch size when the
    experiment varies them); mean over seeds with a min–max band.
    """
    runs = runs.reset_index(drop=True)
    df = runs.assign(
        acc=pd.to_numeric(runs["best_val_acc"], errors="coerce") * 100,
        panel=accuracy_panels(runs),
    )
    diverged = df[df["status"] == "diverged"].groupby("panel").size()
    df = df[np.isfinite(df["acc"])]
    panels = sorted(accuracy_panels(runs).unique(), key=_natural_key) or ["(no runs)"]
    acts = _ordered(runs["activation"], ACTIVATION_ORDER)
    inits = _ordered(runs["init"], INIT_ORDER)
    palette = dict(zip(acts, sns.color_palette("colorblind", len(acts)), strict=True))
    marker_cycle = ["o", "s", "^", "D", "v", "P", "X"]
    dash_cycle = ["-", "--", ":", "-."]
    marks = {init: marker_cycle[k % len(marker_cycle)] for k, init in enumerate(inits)}
    dashes = {init: dash_cycle[k % len(dash_cycle)] for k, init in enumerate(inits)}

    with _style():
        fig, axes = _facet_axes(len(panels), ncols=min(3, len(panels)))
        for ax, panel in zip(axes, panels, strict=True):
            sub = df[df["panel"] == panel]
            title = panel
            if diverged.get(panel, 0):
                title += f"\n{diverged[panel]} diverged run(s) without accuracy"
            ax.set_title(title)
            if sub.empty:
                _empty_note(ax, "no finite accuracies")
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
            depths = sorted(int(v) for v in sub["depth"].unique())
            ax.set_xticks(depths if len(depths) <= 12 else depths[:: math.ceil(len(depths) / 12)])
            ax.set_xlim(depths[0] - 0.5, depths[-1] + 0.5)
            lo, hi = float(sub["acc"].min()), float(sub["acc"].max())
            if hi - lo < 2:  # a flat line or a single point: show at least 3 percentage points
                mid = (lo + hi) / 2
                ax.set_ylim(mid - 1.5, mid + 1.5)
            ax.set_xlabel("hidden layers")
        fig.supylabel("best validation accuracy (%)")
        _suptitle(fig, "Accuracy vs depth (mean over seeds; band = min–max)")
        handles = [Line2D([], [], color=palette[a], lw=2) for a in acts]
        handles += [Line2D([], [], color="0.3", ls=dashes[i], marker=marks[i]) for i in inits]
        labels = [f"activation: {a}" for a in acts] + [f"init: {i}" for i in inits]
        fig.legend(handles, labels, loc="outside right center", frameon=False)
        _save(fig, out)


def _n_heatmap_rows(sub: pd.DataFrame) -> int:
    if sub.empty:
        return 1
    by_width = sub.groupby("depth")["widths"].nunique().max() > 1
    return int(sub["widths"].nunique() if by_width else sub["depth"].nunique())


def plot_ratio_heatmap(runs: pd.DataFrame, out: str | Path) -> None:
    """log10(grad ratio at init) over depth × (activation, init); one row per experiment.

    Cells are annotated with the ratio itself (median over seeds and widths). Each experiment
    shows the combinations it ran, in the same order as the others; a combination it ran at
    some depths only is blank at the rest.
    """
    runs = runs.reset_index(drop=True)
    ratio = pd.to_numeric(runs["grad_ratio_init"], errors="coerce")
    df = runs.assign(log_ratio=np.log10(ratio.where(np.isfinite(ratio) & (ratio > 0))))
    df = df.assign(column=df["activation"].astype(str) + "\n" + df["init"].astype(str))
    experiments = sorted(runs["experiment"].dropna().unique()) or ["(none)"]
    acts = _ordered(runs["activation"], ACTIVATION_ORDER)
    inits = _ordered(runs["init"], INIT_ORDER)
    column_order = [f"{a}\n{i}" for a in acts for i in inits]
    finite = df["log_ratio"].dropna()
    vmax = max(float(finite.abs().max()) if len(finite) else 1.0, 0.5)
    cmap = sns.color_palette("vlag", as_cmap=True)
    n_depths = [max(1, _n_heatmap_rows(df[df["experiment"] == e])) for e in experiments]

    n_columns = max(1, int(df.groupby("experiment")["column"].nunique().max()) if len(df) else 1)
    cell_w, cell_h = 1.35, 0.5  # inches

    with _style():
        fig = Figure(
            figsize=(cell_w * n_columns + 3.4, cell_h * sum(n_depths) + 1.4 * len(n_depths)),
            layout="constrained",
        )
        axes = fig.subplots(len(experiments), 1, squeeze=False, height_ratios=n_depths).ravel()
        for ax, exp in zip(axes, experiments, strict=True):
            sub = df[df["experiment"] == exp]
            dataset = ", ".join(map(str, sub["dataset"].dropna().unique())) if len(sub) else ""
            ax.set_title(f"{exp} ({dataset})" if dataset else str(exp))
            if sub.empty:
                _empty_note(ax, "no runs")
                continue
            # rows: depth, or the width pattern when an experiment sweeps widths too
            by_width = sub.groupby("depth")["widths"].nunique().max() > 1
            order = sub.sort_values(["depth", "widths"], key=lambda c: c.map(_width_sort_key))
            rows = order["widths"].map(widths_label) if by_width else order["depth"]
            sub = sub.assign(row=rows)
            columns = [c for c in column_order if c in set(sub["column"])]  # those it ran
            grid = (
                sub.groupby(["row", "column"])["log_ratio"]
                .median()
                .unstack("column")
                .reindex(index=list(pd.unique(rows)), columns=columns)
            )
            raw = sub.groupby(["row", "column"])["grad_ratio_init"].max().unstack("column")
            raw = raw.reindex(index=grid.index, columns=columns)
            ran = sub.groupby(["row", "column"]).size().unstack("column")
            ran = ran.reindex(index=grid.index, columns=columns).notna()
            annot = grid.map(lambda v: format_ratio(10**v) if pd.notna(v) else "")
            sns.heatmap(
                grid.astype(float),
                ax=ax,
                cmap=cmap,
                center=0,
                vmin=-vmax,
                vmax=vmax,
                annot=annot.to_numpy(),
                fmt="",
                cbar=False,
                linewidths=1,
                linecolor="white",
                annot_kws={"fontsize": 8},
            )
            ax.set_facecolor("0.96")  # combinations not run (or no finite ratio)
            # seaborn leaves NaN cells unannotated: mark runs without a finite ratio
            for i, r in enumerate(grid.index):
                for j, c in enumerate(columns):
                    if pd.isna(grid.loc[r, c]) and ran.loc[r, c]:
                        text = "∞" if raw.loc[r, c] == np.inf else "—"
                        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8)
            ax.grid(False)
            ax.set_xlabel("")
            ax.set_ylabel("hidden layers × units" if by_width else "hidden layers")
            ax.tick_params(axis="x", labelrotation=0, labelsize=8)
            ax.tick_params(axis="y", labelrotation=0)
        axes[-1].set_xlabel("activation / weight init")
        mappable = ScalarMappable(norm=Normalize(-vmax, vmax), cmap=cmap)
        cbar = fig.colorbar(mappable, ax=list(axes), shrink=min(1.0, 4 / len(axes) + 0.3))
        cbar.set_label("log₁₀(grad ratio at init)\n> 0 vanishing · < 0 exploding")
        _suptitle(fig, "Gradient ratio at initialisation:\nlast ÷ first hidden layer")
        _save(fig, out)
