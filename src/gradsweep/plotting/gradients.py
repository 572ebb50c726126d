"""Per-experiment gradient figures: one panel per config (seeds as a geometric-mean line
with a min–max band), one line per hidden layer, split into pages (data.pages) when an
experiment has more configs than fit in one image. The update-size figure (issue 15) has the
same panels and pages, so ``updates<page>.png`` sits beside ``gradients<page>.png``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
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
    style,
    suptitle,
    thousands,
)

MAX_STEP_POINTS = 400  # per line, after smoothing


def smooth_steps(d: pd.DataFrame, max_points: int = MAX_STEP_POINTS) -> tuple[pd.DataFrame, int]:
    """Rolling median (window ≈ n / max_points · 2) and downsampling to ≤ max_points rows."""
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


def _escape_text(runs: pd.DataFrame) -> str:
    if "escape_epoch" not in runs:
        return ""
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


def _figure(page: D.Page, axes: list[str]) -> tuple[Figure, dict[str, object], int]:
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
    return fig, panels, ncols


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
) -> pd.DataFrame:
    """Draw one page of ``value`` per hidden layer; return one row per config drawn
    (config_id, n_seeds, drawn)."""
    axes = F.varying_axes(runs)
    runs = F.with_axes(runs)
    depth = int(runs["depth"].max()) if len(runs) else 1
    colors = layer_colors(depth)
    ok = tidy[D.isin(tidy["run_id"], runs.loc[runs["status"] != "diverged", "run_id"])]
    limits = decade_limits(ok[value] if len(ok) else tidy[value])
    bands = D.seed_band(tidy, ["config_id", "layer", x], value) if len(tidy) else tidy
    by_config = dict(tuple(bands.groupby("config_id", sort=False))) if len(bands) else {}
    max_x = float(tidy[x].max()) if len(tidy) else 1.0
    drawn = []
    with style():
        fig, panels, ncols = _figure(page, axes)
        for _, cfg in page.configs.iterrows():
            ax = panels[cfg["config_id"]]
            members = runs[runs["config_id"] == cfg["config_id"]]
            n_div = int((members["status"] == "diverged").sum())
            head = D.config_title(cfg, axes, len(members))
            extra = _escape_text(members) if x == "epoch" else ""
            if n_div:
                extra = f"{n_div} of {len(members)} diverged" + (f"; {extra}" if extra else "")
            ax.set_title(head + (f"\n{extra}" if extra else ""), fontsize=8,
                         color=DIVERGED_COLOR if n_div else "black")  # fmt: skip
            d = by_config.get(cfg["config_id"])
            drawn.append(
                {"config_id": cfg["config_id"], "n_seeds": len(members), "drawn": d is not None}
            )
            if d is None or d.empty:
                empty_note(
                    ax, missing or f"no finite {'probe' if x == 'epoch' else 'step'} gradients"
                )
                continue
            for layer, ld in d.groupby("layer"):
                color = colors[int(layer) - 1]
                few = x == "epoch" and max_x <= 30
                ax.plot(
                    ld[x], ld["gmean"], color=color, lw=1.5, marker="o" if few else None, ms=2.5
                )
                if (ld["n"] > 1).any():
                    ax.fill_between(ld[x], ld["lo"], ld["hi"], color=color, alpha=BAND_ALPHA, lw=0)
            for run_id in members["run_id"]:
                if run_id in diverged_at:
                    ax.axvline(diverged_at[run_id], color=DIVERGED_COLOR, ls="--", lw=0.9)
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
        fig.supxlabel(xlabel, y=0.15 / fig.get_figheight())
        fig.supylabel(ylabel, x=0.15 / fig.get_figwidth())
        if page.title:
            title += f"\n{page.title}"
        if notes:
            title += "\n(" + "; ".join(notes) + ")"
        suptitle(fig, title)
        extra = [
            (Patch(color="0.6", alpha=0.5), "min–max over seeds"),
            (Line2D([], [], color="0.2", lw=1.5), "geometric mean over seeds"),
        ]
        if diverged_at:
            extra.append((Line2D([], [], color=DIVERGED_COLOR, ls="--"), "a seed diverged"))
        layer_legend(fig, depth, extra=extra, loc="center right")
        save(fig, out)
    return pd.DataFrame(drawn)


def _title(kind: str, experiment: str | None, runs: pd.DataFrame) -> str:
    title = f"{kind} — {experiment or 'all runs'}"
    if len(runs) and "dataset" in runs:
        title += f" ({', '.join(map(str, runs['dataset'].dropna().unique()))})"
    return title


def _page(runs: pd.DataFrame, experiment: str | None, page: str) -> tuple[D.Page, pd.DataFrame]:
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
    pg, runs = _page(runs, experiment, page)
    rows = D.hidden_bias(traces, runs, "probe")
    tidy = D.finite_positive(rows, "grad_norm")
    title = _title("Per-layer gradient norms during training", experiment, runs)
    return _draw(
        tidy, runs, pg, out, x="epoch", ylabel=PROBE_YLABEL,
        xlabel="epoch (0 = at initialisation)", title=title, notes=[],
        diverged_at=D.divergence_points(rows, runs, "epoch"),
    )  # fmt: skip


def plot_step_traces(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
    page: str = "",
) -> pd.DataFrame:
    """One panel per config of the page: mini-batch bias-gradient norm per hidden layer vs
    SGD step (log y), each seed smoothed by a rolling median, then geometric mean and min–max
    band over seeds. Returns the configs drawn."""
    pg, runs = _page(runs, experiment, page)
    rows = D.hidden_bias(traces, runs, "step")
    tr = D.finite_positive(rows, "grad_norm")
    tr = tr.sort_values(["run_id", "layer", "step"])
    windows: set[int] = set()
    parts = []
    for _, d in tr.groupby(["run_id", "layer"], sort=False):
        d, window = smooth_steps(d)
        windows.add(window)
        parts.append(d)
    tidy = pd.concat(parts) if parts else tr
    n_untraced = int((~D.isin(runs["run_id"], tidy["run_id"])).sum()) if len(tidy) else len(runs)
    notes = []
    if max(windows, default=1) > 1:
        notes.append(f"each seed: rolling median over {max(windows)} traced steps")
    if n_untraced and len(tidy):
        notes.append(f"{n_untraced} run(s) without step traces")
    title = _title("Per-layer mini-batch gradient norms", experiment, runs)
    return _draw(
        tidy, runs, pg, out, x="step", ylabel=STEP_YLABEL,
        xlabel="SGD step (mini-batch updates so far)", title=title, notes=notes,
        diverged_at=D.divergence_points(rows, runs, "step"),
    )  # fmt: skip


UPDATE_YLABEL = "‖ΔW‖ / ‖W‖ over the epoch (log)"


def plot_update_sizes(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
    page: str = "",
) -> pd.DataFrame:
    """The page's panels of ``gradients<page>.png`` again, with each hidden layer's relative
    update size: ‖W_e − W_(e−1)‖ / ‖W_e‖ of its kernel over epoch e (probe rows,
    ``relative_update``; log y), geometric mean over seeds with a min–max band. It shows how
    fast each layer actually moves under any optimizer, next to how large its gradient is.
    Runs traced before update sizes were recorded get a note. Returns the configs drawn."""
    pg, runs = _page(runs, experiment, page)
    if "relative_update" not in traces:
        traces = traces.assign(relative_update=float("nan"))
    rows = D.hidden_rows(traces, runs, "probe", "kernel")
    tidy = D.finite_positive(rows[rows["epoch"] >= 1], "relative_update")
    title = _title("Per-layer relative update size per epoch", experiment, runs)
    return _draw(
        tidy, runs, pg, out, x="epoch", ylabel=UPDATE_YLABEL,
        xlabel="epoch (update over that epoch)", title=title, notes=[],
        diverged_at=D.divergence_points(rows, runs, "epoch"), value="relative_update",
        missing="no update sizes recorded",
    )  # fmt: skip


__all__ = ["plot_gradient_norms", "plot_step_traces", "plot_update_sizes", "smooth_steps"]
