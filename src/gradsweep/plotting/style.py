"""Shared look of every figure: style context, sizes, colours, axes helpers, saving.

Every figure is drawn on a standalone ``matplotlib.figure.Figure`` (rendered by Agg, never
registered with pyplot, so nothing is left open and the caller's backend is untouched).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

DPI = 150
PANEL_W = 3.4  # inches per facet
PANEL_H = 2.6
DIVERGED_COLOR = "#b2182b"
REFERENCE_COLOR = "black"
BAND_ALPHA = 0.18
PROBE_YLABEL = "‖∂C/∂b‖ on probe set (log)"
TWIN_LABEL = "<twin>"  # the label of a panel's second y axis (ax.twinx()): not a panel
STEP_YLABEL = "‖∂C/∂b‖ on mini-batch (log)"


@contextmanager
def style() -> Iterator[None]:
    rc = {"savefig.dpi": DPI, "figure.dpi": 100, "axes.titlesize": 9, "axes.titlepad": 4}
    with (
        sns.axes_style("whitegrid"),
        sns.plotting_context("paper", font_scale=1.1),
        mpl.rc_context(rc),
    ):
        yield


def panel_count(fig: Figure) -> int:
    """Visible plotting panels of a figure (colour bars and twin y axes are not panels)."""
    return sum(
        1
        for ax in fig.get_axes()
        if ax.get_visible() and ax.get_label() not in ("<colorbar>", TWIN_LABEL)
    )


def save(fig: Figure, out: str | Path) -> None:
    """Save as PNG; the number of panels goes into the PNG's ``Panels`` text chunk, so tests
    and benchmarks can check the ``MAX_PANELS`` limit on the image itself."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png", metadata={"Panels": str(panel_count(fig))})
    fig.clear()


def layer_colors(n: int) -> list[tuple[float, float, float]]:
    """Sequential palette, dark (input side) to light green (output side); no pale yellow."""
    cmap = mpl.colormaps["viridis"]
    if n <= 1:
        return [cmap(0.0)[:3]]
    return [cmap(0.85 * i / (n - 1))[:3] for i in range(n)]


def suptitle(fig: Figure, text: str) -> None:
    """Figure title wrapped to the figure width (constrained layout does not widen it)."""
    chars = max(24, int(fig.get_figwidth() * 8.5))
    lines = [textwrap.fill(line, chars) for line in text.split("\n")]
    fig.suptitle("\n".join(lines), fontsize=11)


def empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def heatmap_mesh(ax: Axes, values: np.ndarray, cmap: object, vmin: float, vmax: float) -> QuadMesh:
    """Cells of ``values`` (row 0 on top) as a pcolormesh with white gaps, NaN left blank on a
    light grey face: what ``sns.heatmap(..., linewidths=1, linecolor="white")`` drew, without
    its overlap check of the tick labels, which asks a canvas-less Figure for a fresh
    full-size Agg renderer per label (87 MB each for a 120-row experiment: 4.5 GB). The
    caller sets the ticks (cell centres: ``np.arange(n) + 0.5``) and any colour bar."""
    mesh = ax.pcolormesh(
        np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax,
        linewidths=1, edgecolor="white",
    )  # fmt: skip
    ax.set(xlim=(0, values.shape[1]), ylim=(values.shape[0], 0))
    ax.spines[:].set_visible(False)
    ax.set_facecolor("0.96")  # NaN: not run or not recorded
    return mesh


def facet_axes(n: int, ncols: int | None = None, extra_h: float = 0.0) -> tuple[Figure, list]:
    """A figure with n panels wrapped into rows of ``ncols`` (default ≤ 4)."""
    ncols = ncols or min(4, max(1, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(
        figsize=(PANEL_W * ncols + 1.6, PANEL_H * nrows + 0.9 + extra_h), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def decade_limits(values: pd.Series) -> tuple[float, float] | None:
    """Log-axis limits on whole decades, so every panel shows labelled major ticks."""
    v = pd.to_numeric(pd.Series(values), errors="coerce")
    v = v[np.isfinite(v) & (v > 0)]
    if v.empty:
        return None
    # whole decades strictly around the data: a value of exactly 10^k is not on the edge
    lo = math.ceil(math.log10(float(v.min()))) - 1
    hi = math.floor(math.log10(float(v.max()))) + 1
    if hi - lo < 2:  # at least two labelled decades
        lo, hi = (lo - 1, hi) if hi - lo == 1 else (lo - 1, hi + 1)
    return 10.0**lo, 10.0**hi


def mark_divergence(ax: Axes, x: float | None, label: str = "diverged") -> None:
    if x is None or not np.isfinite(x):
        return
    ax.axvline(x, color=DIVERGED_COLOR, ls="--", lw=1)
    ax.annotate(
        label,
        (x, 1),
        xycoords=("data", "axes fraction"),
        xytext=(-3, -3),
        textcoords="offset points",
        ha="right",
        va="top",
        color=DIVERGED_COLOR,
        fontsize=8,
    )


def seed_legend(several: bool, mean: str = "geometric mean") -> list[tuple[Artist, str]]:
    """The legend entries of a config's line and band: "min–max over seeds" only where a
    config has several seeds."""
    if not several:
        return [(Line2D([], [], color="0.2", lw=1.5), "one seed per config")]
    return [
        (Patch(color="0.6", alpha=0.5), "min–max over seeds"),
        (Line2D([], [], color="0.2", lw=1.5), f"{mean} over seeds"),
    ]


def several_seeds(runs: pd.DataFrame) -> bool:
    """Does any config of ``runs`` have more than one seed?"""
    return bool(len(runs)) and int(runs.groupby("config_id").size().max()) > 1


def layer_legend(
    fig: Figure,
    n_layers: int,
    title: str = "hidden layer",
    extra: tuple | list = (),
    loc: str = "outside right center",
) -> None:
    colors = layer_colors(n_layers)
    handles = [Line2D([], [], color=c, lw=2) for c in colors]
    labels = [f"{title} {i}" for i in range(1, n_layers + 1)]
    labels[0] += " (input side)"
    if n_layers > 1:
        labels[-1] += " (output side)"
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    fig.legend(handles, labels, loc=loc, frameon=False)


def thousands(x: float, _pos: object = None) -> str:
    """Axis label for step counts: 0, 500, 5k, 12.5k, 1.2M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def with_datasets(name: str, runs: pd.DataFrame) -> str:
    """``name (fashion_mnist)``: a title's experiment with its runs' datasets, if recorded."""
    column = runs["dataset"] if "dataset" in runs else pd.Series(dtype=object)
    datasets = ", ".join(map(str, column.dropna().unique()))
    return f"{name} ({datasets})" if datasets else name
