"""Per-experiment gradient figures: one panel per config (seeds as a geometric-mean line
with a min–max band), one line per hidden layer, split into pages (data.pages) when an
experiment has more configs than fit in one image. The update-size figure (issue 15) has the
same panels and pages, so ``updates<page>.png`` sits beside ``gradients<page>.png``; it draws
each update's gradient part and weight-decay part apart (issue 24)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from gradsweep import facets as F
from gradsweep.plotting import data as D
from gradsweep.plotting.style import (
    BAND_ALPHA,
    DIVERGED_COLOR,
    PANEL_H,
    PANEL_W,
    PROBE_YLABEL,
    STEP_YLABEL,
    decade_limits,
    empty_note,
    layer_colors,
    layer_legend,
    save,
    seed_legend,
    several_seeds,
    style,
    suptitle,
    thousands,
    with_datasets,
)
from gradsweep.verdicts import ONE_LAYER, has_ratio

MAX_STEP_POINTS = 400  # per line, after smoothing


def _smooth_line(d: pd.DataFrame, max_points: int) -> tuple[pd.DataFrame, int]:
    """One trace: rolling median (window ≈ n / max_points · 2), downsampled to ≤ max_points."""
    n = len(d)
    if n <= max_points:
        return d, 1
    stride = math.ceil(n / max_points)
    window = 2 * stride + 1
    # the centred rolling median, taken only at the rows kept (a window of NaN-padded values
    # around every stride-th row; the rows are finite, so the padding only trims the edges)
    padded = np.pad(d["grad_norm"].to_numpy(float), stride, constant_values=np.nan)
    medians = np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, window)[::stride], 1)
    return d.iloc[::stride].assign(grad_norm=medians), window


def smooth_steps(d: pd.DataFrame, max_points: int = MAX_STEP_POINTS) -> tuple[pd.DataFrame, int]:
    """Every run's and layer's step trace, in step order: a rolling median (window ≈ n /
    max_points · 2) downsampled to ≤ max_points rows. Returns the rows (by run, layer, step)
    and the widest window used (1: no trace needed smoothing)."""
    d = d.sort_values(["run_id", "layer", "step"])
    parts, widest = [], 1
    for _, line in d.groupby(["run_id", "layer"], sort=False):
        line, window = _smooth_line(line, max_points)
        parts.append(line)
        widest = max(widest, window)
    return (pd.concat(parts) if parts else d), widest


def seed_bands(tidy: pd.DataFrame, x: str, value: str = "grad_norm") -> dict[str, pd.DataFrame]:
    """Per config_id: ``value``'s geometric mean, min and max over the seeds per hidden layer
    and ``x`` (data.seed_band); empty without rows."""
    bands = D.seed_band(tidy, ["config_id", "layer", x], value) if len(tidy) else tidy
    return dict(tuple(bands.groupby("config_id", sort=False))) if len(bands) else {}


def draw_layer_lines(
    ax: Axes,
    bands: pd.DataFrame,
    x: str,
    colors: list,
    *,
    lw: float = 1.5,
    marker: str | None = None,
    ls: str | tuple = "-",
    band: bool = True,
) -> None:
    """One config's panel: a geometric-mean line per hidden layer, with its min–max band over
    the seeds where there are several (and ``band``)."""
    for layer, ld in bands.groupby("layer"):
        color = colors[int(layer) - 1]
        ax.plot(ld[x], ld["gmean"], color=color, lw=lw, marker=marker, ms=2.5, ls=ls)
        if band and (ld["n"] > 1).any():
            ax.fill_between(ld[x], ld["lo"], ld["hi"], color=color, alpha=BAND_ALPHA, lw=0)


def _escape_text(runs: pd.DataFrame) -> str:
    """When the seeds' gradient ratio became healthy; nothing to say with one hidden layer."""
    if "escape_epoch" not in runs:
        return ""
    if "depth" in runs and not runs["depth"].map(has_ratio).any():
        return f"grad ratio {ONE_LAYER}"
    esc = pd.to_numeric(runs["escape_epoch"], errors="coerce")
    never = int(esc.isna().sum())
    if esc.notna().any():
        lo, med, hi = int(esc.min()), esc.median(), int(esc.max())
        text = f"healthy from epoch {med:g}" + (f" ({lo}–{hi})" if lo != hi else "")
        return text + (f", {never} never" if never else "")
    return "never healthy" if never else ""


# Fixed margins (inches) instead of constrained layout, which cost a third of a page's time.
LEFT, RIGHT, BOTTOM, TOP = 0.85, 2.4, 0.6, 1.25  # RIGHT holds the legend, TOP the titles
TITLE_H, GAP_W = 0.75, 0.2  # above each panel (3 title lines + tick labels); between columns


def figure_size(nrows: int, ncols: int) -> tuple[float, float]:
    """Inches of a page of nrows × ncols panels."""
    return LEFT + PANEL_W * ncols + RIGHT, TOP + PANEL_H * nrows + BOTTOM


def page_figure(page: D.Page, axes: list[str]) -> tuple[Figure, dict[str, Axes]]:
    """A page's empty panels (data.panel_layout, shared x and y) in the fixed margins, by
    config_id; the per-epoch figures of plotting.curves draw on it too."""
    nrows, ncols, pos = D.panel_layout(page.configs, axes)
    w, h = figure_size(nrows, ncols)
    fig = Figure(figsize=(w, h))
    fig.subplots_adjust(
        left=LEFT / w,
        right=1 - RIGHT / w,
        bottom=BOTTOM / h,
        top=1 - (TOP - TITLE_H) / h - TITLE_H / h,
        wspace=GAP_W / (PANEL_W - GAP_W),
        hspace=TITLE_H / (PANEL_H - TITLE_H),
    )
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    used = set(pos)
    for r in range(nrows):
        for c in range(ncols):
            if (r, c) not in used:
                grid[r, c].set_visible(False)
            elif r < nrows - 1 and (r + 1, c) not in used:
                grid[r, c].xaxis.set_tick_params(labelbottom=True)  # last panel of its column
    panels = {cid: grid[r, c] for cid, (r, c) in zip(page.configs["config_id"], pos, strict=True)}
    return fig, panels


def _panel_title(ax: Axes, cfg: pd.Series, members: pd.DataFrame, axes: list[str], x: str) -> None:
    """The config, its seeds and (per epoch) when they became healthy; red if any diverged."""
    n_div = int((members["status"] == "diverged").sum())
    head = D.config_title(cfg, axes, len(members))
    extra = _escape_text(members) if x == "epoch" else ""
    if n_div:
        extra = f"{n_div} of {len(members)} diverged" + (f"; {extra}" if extra else "")
    ax.set_title(head + (f"\n{extra}" if extra else ""), fontsize=8,
                 color=DIVERGED_COLOR if n_div else "black")  # fmt: skip


def panel_axes(ax: Axes, x: str, max_x: float, limits: tuple[float, float] | None) -> None:
    """A panel's axes: log y on the page's shared limits; epochs as integers, steps in thousands."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())  # minor ticks cost seconds at 24 panels
    if limits is not None:
        ax.set_ylim(*limits)
    if x == "epoch":
        ax.set_xlim(-0.3, max_x + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    else:
        ax.set_xlim(0, max_x * 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(thousands))
    ax.tick_params(labelsize=7)


def page_labels(
    fig: Figure, page: D.Page, *, xlabel: str, ylabel: str, title: str, notes: list[str]
) -> None:
    """Axis labels in the fixed margins, and the title with the page's name and the notes."""
    fig.supxlabel(xlabel, y=0.15 / fig.get_figheight())
    fig.supylabel(ylabel, x=0.15 / fig.get_figwidth())
    if page.title:
        title += f"\n{page.title}"
    if notes:
        title += "\n(" + "; ".join(notes) + ")"
    suptitle(fig, title)


def _page_legend(
    fig: Figure, depth: int, diverged: bool, several: bool, lines: list[tuple] | None = None
) -> None:
    extra = seed_legend(several)
    if lines:  # the figure's own kinds of line (solid and dotted) instead of the mean's
        extra = [entry for entry in extra if isinstance(entry[0], Patch)] + lines
    if diverged:
        extra.append((Line2D([], [], color=DIVERGED_COLOR, ls="--"), "a seed diverged"))
    layer_legend(fig, depth, extra=extra, loc="center right")


def _draw(
    tidy: pd.DataFrame,
    runs: pd.DataFrame,
    page: D.Page,
    out: str | Path,
    *,
    x: str,
    ylabel: str,
    xlabel: str,
    title: str,
    notes: list[str],
    diverged_at: dict[str, float],
    value: str = "grad_norm",
    missing: str = "",
    dotted: pd.DataFrame | None = None,
    legend: list[tuple] | None = None,
) -> pd.DataFrame:
    """Draw one page of ``value`` per hidden layer (and of ``dotted``'s, as dotted lines
    without a band; ``legend``: the lines' entries); return one row per config drawn
    (config_id, n_seeds, drawn)."""
    axes = F.varying_axes(runs)
    runs = F.with_axes(runs)
    depth = int(runs["depth"].max()) if len(runs) else 1
    colors = layer_colors(depth)
    both = tidy if dotted is None else pd.concat([tidy, dotted])
    ok = both[D.isin(both["run_id"], runs.loc[runs["status"] != "diverged", "run_id"])]
    limits = decade_limits(ok[value] if len(ok) else both[value])
    by_config = seed_bands(tidy, x, value)
    dotted_by_config = {} if dotted is None else seed_bands(dotted, x, value)
    max_x = float(tidy[x].max()) if len(tidy) else 1.0
    marker = "o" if x == "epoch" and max_x <= 30 else None
    missing = missing or f"no finite {'probe' if x == 'epoch' else 'step'} gradients"
    drawn = []
    with style():
        fig, panels = page_figure(page, axes)
        for _, cfg in page.configs.iterrows():
            ax = panels[cfg["config_id"]]
            members = runs[runs["config_id"] == cfg["config_id"]]
            _panel_title(ax, cfg, members, axes, x)
            d = by_config.get(cfg["config_id"])
            drawn.append(
                {"config_id": cfg["config_id"], "n_seeds": len(members), "drawn": d is not None}
            )
            if d is None or d.empty:
                empty_note(ax, missing)
                continue
            draw_layer_lines(ax, d, x, colors, marker=marker)
            if cfg["config_id"] in dotted_by_config:
                dots = dotted_by_config[cfg["config_id"]]
                draw_layer_lines(ax, dots, x, colors, lw=1.3, ls=":", band=False)
            for run_id in members["run_id"]:
                if run_id in diverged_at:
                    ax.axvline(diverged_at[run_id], color=DIVERGED_COLOR, ls="--", lw=0.9)
            panel_axes(ax, x, max_x, limits)
        page_labels(fig, page, xlabel=xlabel, ylabel=ylabel, title=title, notes=notes)
        _page_legend(fig, depth, bool(diverged_at), several_seeds(runs), legend)
        save(fig, out)
    return pd.DataFrame(drawn)


def figure_title(kind: str, experiment: str | None, runs: pd.DataFrame) -> str:
    """``<kind> — <experiment> (<datasets>)``."""
    return with_datasets(f"{kind} — {experiment or 'all runs'}", runs)


def experiment_page(
    runs: pd.DataFrame, experiment: str | None, page: str
) -> tuple[D.Page, pd.DataFrame]:
    """The experiment's page with that suffix (data.pages) and the page's runs."""
    if experiment is not None and "experiment" in runs:
        runs = runs[runs["experiment"] == experiment]
    if runs.empty:
        return D.Page("", "", runs.head(0).assign(config_id=[])), runs
    return D.page_runs(runs, page)


def plot_gradient_norms(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
    page: str = "",
) -> pd.DataFrame:
    """One panel per config of the page: probe bias-gradient norm per hidden layer vs epoch
    (log y), geometric mean over seeds with a min–max band. Returns the configs drawn."""
    pg, runs = experiment_page(runs, experiment, page)
    rows = D.hidden_bias(traces, runs, "probe")
    tidy = D.finite_positive(rows, "grad_norm")
    title = figure_title("Per-layer gradient norms during training", experiment, runs)
    return _draw(
        tidy, runs, pg, out, x="epoch", ylabel=PROBE_YLABEL,
        xlabel="epoch (0 = at initialisation)", title=title, notes=[],
        diverged_at=D.divergence_points(rows, runs, "epoch"),
    )  # fmt: skip


@dataclass
class StepLines:
    """What the step figure draws: each run's and layer's smoothed line (:func:`smooth_steps`
    of its finite hidden-layer bias rows), the widest smoothing window, and the last traced
    step of each diverged run. Built run by run (:func:`step_lines`, then
    :func:`gather_step_lines`), so a figure never holds more than one run's raw step rows."""

    rows: pd.DataFrame
    window: int = 1
    diverged_at: dict[str, float] = field(default_factory=dict)


def step_lines(
    traces: pd.DataFrame, runs: pd.DataFrame, max_points: int = MAX_STEP_POINTS
) -> StepLines:
    """The step figure's lines of ``runs`` from their step trace rows (whole runs)."""
    rows = D.hidden_bias(traces, runs, "step")
    tidy, window = smooth_steps(D.finite_positive(rows, "grad_norm"), max_points)
    return StepLines(tidy, window, D.divergence_points(rows, runs, "step"))


def gather_step_lines(parts: Iterable[StepLines]) -> StepLines | None:
    """One :class:`StepLines` of several runs' (None without any)."""
    parts = list(parts)
    if not parts:
        return None
    drawn = [p.rows for p in parts if len(p.rows)]
    rows = pd.concat(drawn, ignore_index=True) if drawn else parts[0].rows
    diverged = {k: v for p in parts for k, v in p.diverged_at.items()}
    return StepLines(rows, max(p.window for p in parts), diverged)


def plot_step_traces(
    traces: pd.DataFrame | StepLines,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
    page: str = "",
) -> pd.DataFrame:
    """One panel per config of the page: mini-batch bias-gradient norm per hidden layer vs
    SGD step (log y), each seed smoothed by a rolling median, then geometric mean and min–max
    band over seeds. ``traces``: the step rows, or their :class:`StepLines` read run by run.
    Returns the configs drawn."""
    pg, runs = experiment_page(runs, experiment, page)
    lines = traces if isinstance(traces, StepLines) else step_lines(traces, runs)
    tidy, window = lines.rows, lines.window
    n_untraced = int((~D.isin(runs["run_id"], tidy["run_id"])).sum()) if len(tidy) else len(runs)
    notes = []
    if window > 1:
        notes.append(f"each seed: rolling median over {window} traced steps")
    if n_untraced and len(tidy):
        notes.append(f"{n_untraced} run(s) without step traces")
    title = figure_title("Per-layer mini-batch gradient norms", experiment, runs)
    return _draw(
        tidy, runs, pg, out, x="step", ylabel=STEP_YLABEL,
        xlabel="SGD step (mini-batch updates so far)", title=title, notes=notes,
        diverged_at=lines.diverged_at,
    )  # fmt: skip


UPDATE_YLABEL = "‖ΔW‖ / ‖W‖ over the epoch (log)"
SPLIT_COLUMNS = ("update_norm", "decay_norm", "grad_step_norm")


def update_parts(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The kernel probe rows of epochs ≥ 1 as the updates figure draws them, in
    ``relative_update``: (solid, dotted, runs without the split). Solid is the gradient's part
    of the epoch's update, ``grad_step_norm`` ÷ ‖W_e‖ (‖W_e‖ = ``update_norm`` ÷
    ``relative_update``), or the whole update where the split was not recorded (traces from
    before issue 24); dotted is the weight decay's part, ``decay_norm`` ÷ ‖W_e‖ (none without
    weight decay, where it is 0)."""
    rows = rows[rows["epoch"] >= 1]
    rows = rows.assign(**{c: float("nan") for c in SPLIT_COLUMNS if c not in rows})
    values = rows[["relative_update", *SPLIT_COLUMNS]].apply(pd.to_numeric, errors="coerce")
    with np.errstate(divide="ignore", invalid="ignore"):
        per_size = values["relative_update"] / values["update_norm"]  # 1 / ‖W_e‖
    split = np.isfinite(per_size) & values["decay_norm"].notna() & values["grad_step_norm"].notna()
    gradient = values["grad_step_norm"] * per_size
    solid = rows.assign(relative_update=gradient.where(split, values["relative_update"]))
    dotted = rows[split].assign(relative_update=(values["decay_norm"] * per_size)[split])
    unsplit = rows.loc[~split & values["relative_update"].notna(), "run_id"].nunique()
    return (
        D.finite_positive(solid, "relative_update"),
        D.finite_positive(dotted, "relative_update"),
        int(unsplit),
    )


def plot_update_sizes(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
    page: str = "",
) -> pd.DataFrame:
    """The page's panels of ``gradients<page>.png`` again, with each hidden layer's relative
    update size over epoch e, split in two (:func:`update_parts`): solid, the gradient's part
    of W_e − W_(e−1) ÷ ‖W_e‖, geometric mean over seeds with a min–max band; dotted, the
    weight decay's part (the L2 shrink, about η λ/n per step), geometric mean. It shows how
    fast each layer actually moves under any optimizer, next to how large its gradient is,
    and where the decay alone moves it. Runs traced before update sizes (or their split) were
    recorded get a note. Returns the configs drawn."""
    pg, runs = experiment_page(runs, experiment, page)
    if "relative_update" not in traces:
        traces = traces.assign(relative_update=float("nan"))
    rows = D.hidden_rows(traces, runs, "probe", "kernel")
    solid, dotted, unsplit = update_parts(rows)
    kind = "Per-layer relative update size per epoch"
    if len(dotted) or not unsplit:
        kind += ": the gradient's part (solid) and the weight decay's (dotted)"
    title = figure_title(kind, experiment, runs)
    notes = [f"{unsplit} run(s) traced before the split: solid = whole update"] if unsplit else []
    legend = [
        (Line2D([], [], color="0.2", lw=1.5), "gradient's part of the update\n(geometric mean)"),
        (Line2D([], [], color="0.2", lw=1.3, ls=":"),
         "weight decay's part (L2 shrink;\nunder SGD alike in every\nlayer: the lines overlap)"),
    ]  # fmt: skip
    return _draw(
        solid, runs, pg, out, x="epoch", ylabel=UPDATE_YLABEL,
        xlabel="epoch (update over that epoch)", title=title, notes=notes,
        diverged_at=D.divergence_points(rows, runs, "epoch"), value="relative_update",
        missing="no update sizes recorded", dotted=dotted,
        legend=legend if len(dotted) or not unsplit else None,
    )  # fmt: skip


__all__ = [
    "StepLines",
    "draw_layer_lines",
    "experiment_page",
    "figure_title",
    "gather_step_lines",
    "page_figure",
    "page_labels",
    "panel_axes",
    "plot_gradient_norms",
    "plot_step_traces",
    "plot_update_sizes",
    "seed_bands",
    "smooth_steps",
    "step_lines",
    "update_parts",
]
