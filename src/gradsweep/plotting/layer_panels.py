"""The one-path net's four panels: each hidden layer's probe bias-gradient norm vs epoch, on
one log y range so layer 1 < 2 < ... shows (input columns: docs/outputs.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradsweep.formatting import format_ratio
from gradsweep.plotting import data as D
from gradsweep.plotting.article import by_activation, figure_title, trace_x_axis
from gradsweep.plotting.style import (
    PROBE_YLABEL,
    decade_limits,
    empty_note,
    layer_colors,
    save,
    style,
    suptitle,
)

LINE_STYLES = ["-", "--", ":", "-."]  # one per run


def layer_order_fraction(norms: pd.DataFrame) -> float:
    """Fraction of rows (epochs) whose values strictly increase from layer 1 to the last."""
    if norms.shape[1] < 2 or norms.empty:
        return float("nan")
    return float((norms.diff(axis=1).iloc[:, 1:] > 0).all(axis=1).mean())


def _layer_panel(
    ax: Axes,
    rows: pd.DataFrame,
    layer: int,
    depth: int,
    color: object,
    max_epoch: int,
    limits: tuple[float, float] | None,
) -> None:
    """One hidden layer: every run a line in its own style, the median over epochs dotted,
    log y on the limits all panels share."""
    side = {1: " (input side)", depth: " (output side)"}.get(layer, "") if depth > 1 else ""
    ax.set_title(f"hidden layer {layer}{side}")
    if rows.empty:
        empty_note(ax, "no finite gradients")
        return
    for k, (_, d) in enumerate(rows.groupby("run_id", sort=False)):
        ax.plot(
            d["epoch"],
            d["grad_norm"],
            color=color,
            ls=LINE_STYLES[k % len(LINE_STYLES)],
            lw=1.6,
            marker="o" if max_epoch <= 30 else None,
            ms=3,
        )
    med = float(rows["grad_norm"].median())
    ax.axhline(med, color="0.4", lw=0.8, ls=":")
    ax.set_title(f"hidden layer {layer}{side}\nmedian over epochs {format_ratio(med)} (dotted)")
    ax.set_yscale("log")
    if limits is not None:
        ax.set_ylim(*limits)
    trace_x_axis(ax, "probe", max_epoch)
    ax.set_xlabel("epoch")


def plot_layer_panels(
    traces: pd.DataFrame, runs: pd.DataFrame, out: str | Path, experiment: str | None = None
) -> pd.DataFrame:
    """One panel per hidden layer (the article's four panels): the probe bias-gradient norm
    vs epoch, every run a line, all panels on one log y range so layer 1 < 2 < ... shows.

    Returns per run and layer the median, first and last norm over the epochs.
    """
    runs = by_activation(runs, experiment)
    tr = D.finite_positive(D.hidden_bias(traces, runs, "probe"), "grad_norm")
    tr = tr.sort_values(["run_id", "layer", "epoch"])
    depth = int(runs["depth"].max()) if len(runs) else 1
    colors = layer_colors(depth)
    limits = decade_limits(tr["grad_norm"])
    max_epoch = int(tr["epoch"].max()) if len(tr) else 1
    summary = (
        tr.groupby(["run_id", "layer"])["grad_norm"]
        .agg(median="median", first="first", last="last")
        .reset_index()
    )
    norms = tr.pivot_table(index=["run_id", "epoch"], columns="layer", values="grad_norm")
    ordered = layer_order_fraction(norms.dropna())

    with style():
        fig = Figure(figsize=(2.9 * depth + 0.8, 3.3), layout="constrained")
        axes = fig.subplots(1, depth, squeeze=False, sharey=True)[0]
        for layer, ax in enumerate(axes, start=1):
            rows = tr[tr["layer"] == layer]
            _layer_panel(ax, rows, layer, depth, colors[layer - 1], max_epoch, limits)
        axes[0].set_ylabel(PROBE_YLABEL)
        title = figure_title("Bias gradient of each hidden layer", experiment, runs)
        if np.isfinite(ordered) and depth > 1:
            order = " < ".join(str(i) for i in range(1, depth + 1))
            title += f"\nlayer {order} holds in {100 * ordered:.0f} % of epochs"
        if len(runs) > 1:
            title += f" · {len(runs)} runs, one line style each"
        suptitle(fig, title)
        save(fig, out)
    return summary
