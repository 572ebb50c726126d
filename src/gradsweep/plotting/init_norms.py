"""Nielsen's gradient norms at initialisation: the probe bias-gradient norm per hidden layer
at epoch 0, per net, beside the published values (input columns: docs/outputs.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradsweep import facets as F
from gradsweep.formatting import format_ratio
from gradsweep.plotting import data as D
from gradsweep.plotting.article import (
    by_activation,
    figure_title,
    reference_source,
)
from gradsweep.plotting.style import (
    REFERENCE_COLOR,
    decade_limits,
    empty_note,
    layer_colors,
    save,
    style,
    suptitle,
)
from gradsweep.reference import published

GROUP_KEYS = ["widths", "activation", "init"]  # one group of bars per net


def init_norm_table(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    reference: Mapping[str, Any] | None = None,
    experiment: str | None = None,
) -> pd.DataFrame:
    """Probe bias-gradient norm per hidden layer at initialisation (epoch 0), median over the
    seeds of each net, beside the published value for that net and layer (NaN if none).

    Columns: widths, depth, layer, measured, n_runs, reference, ratio (measured ÷ reference).
    """
    runs = by_activation(runs, experiment)
    tr = D.hidden_bias(traces, runs, "probe")
    tr = D.finite_positive(tr[tr["epoch"] == 0], "grad_norm")
    keys = ["widths", "activation", "init"]
    tr = tr.merge(runs[["run_id", *keys]], on="run_id")
    table = (
        tr.groupby([*keys, "depth", "layer"], sort=False)["grad_norm"]
        .agg(measured="median", n_runs="size")
        .reset_index()
    )
    refs = []
    for _, row in table.iterrows():
        values = published(row, reference)
        layer = int(row["layer"])
        ok = values is not None and layer <= len(values)
        refs.append(float(values[layer - 1]) if ok else np.nan)
    table["reference"] = refs
    table["ratio"] = table["measured"] / table["reference"]
    table = table.sort_values(["depth", "widths", "activation", "init", "layer"], kind="stable")
    return table.reset_index(drop=True)


def _seed_norms(traces: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Every seed's finite probe bias-gradient norms at epoch 0, with its net's keys."""
    tr = D.hidden_bias(traces, runs, "probe")
    seeds = D.finite_positive(tr[tr["epoch"] == 0], "grad_norm")
    return seeds.merge(runs[["run_id", *GROUP_KEYS]], on="run_id")


def _bar(ax: Axes, x: float, row: pd.Series, seeds: pd.Series, color: object, bar_w: float) -> None:
    """One layer of one net: the median bar, each seed a dot, the published value as a
    bar-wide line with a diamond, and the value label(s) above."""
    ax.bar(x, row["measured"], width=bar_w * 0.92, color=color, zorder=2)
    if len(seeds) > 1:
        ax.plot([x] * len(seeds), seeds, "o", color="0.2", ms=2.5, zorder=4)
    top = row["measured"]
    if np.isfinite(row["reference"]):
        ref = row["reference"]
        ax.plot(
            [x - bar_w * 0.46, x + bar_w * 0.46],
            [ref, ref],
            color=REFERENCE_COLOR,
            lw=1.8,
            zorder=5,
        )
        ax.plot([x], [ref], "D", color=REFERENCE_COLOR, ms=4, zorder=6)
        top = max(top, ref)
    label = format_ratio(row["measured"])
    if np.isfinite(row["reference"]):
        label += f"\n({format_ratio(row['reference'])})"
    ax.annotate(
        label,
        (x, top),
        xytext=(0, 4),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=7,
        zorder=6,
    )


def _net_bars(
    ax: Axes, g: int, key: tuple, table: pd.DataFrame, seeds: pd.DataFrame, colors: list
) -> None:
    """The bars of the g-th net (``key``: its GROUP_KEYS), one per hidden layer, centred on g."""
    bar_w = 0.8 / len(colors)
    sub = table[(table[GROUP_KEYS] == pd.Series(key, index=GROUP_KEYS)).all(axis=1)]
    of_net = seeds[(seeds[GROUP_KEYS] == pd.Series(key, index=GROUP_KEYS)).all(axis=1)]
    n = len(sub)
    for _, row in sub.iterrows():
        layer = int(row["layer"])
        x = g + (layer - 1 - (n - 1) / 2) * bar_w
        pts = of_net.loc[of_net["layer"] == layer, "grad_norm"]
        _bar(ax, x, row, pts, colors[layer - 1], bar_w)


def _net_axis(ax: Axes, table: pd.DataFrame, groups: list[tuple]) -> None:
    """One tick per net: its widths, and the activation / init where those vary."""
    vary = [k for k in ("activation", "init") if table[k].nunique() > 1]
    labels = []
    for key in groups:
        text = F.widths_label(key[0]) + " units"
        extra = " · ".join(str(dict(zip(GROUP_KEYS, key, strict=True))[k]) for k in vary)
        labels.append(f"{text}\n{extra}" if extra else text)
    ax.set_xticks(range(len(groups)), labels)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("network (hidden layers × units)")


def _legend(
    fig: Figure, table: pd.DataFrame, colors: list, reference: Mapping[str, Any] | None
) -> None:
    handles = [Line2D([], [], color=c, lw=6) for c in colors]
    names = [f"hidden layer {i}" for i in range(1, len(colors) + 1)]
    if table["reference"].notna().any():
        handles.append(Line2D([], [], color=REFERENCE_COLOR, lw=1.8, marker="D", ms=4))
        names.append(f"published:\n{reference_source(reference)}")
    if (table["n_runs"] > 1).any():
        handles.append(Line2D([], [], ls="", marker="o", color="0.2", ms=3))
        names.append("one seed (bar: median)")
    fig.legend(handles, names, loc="outside right center", frameon=False, fontsize=8)


def plot_init_norms(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    reference: Mapping[str, Any] | None,
    out: str | Path,
    experiment: str | None = None,
) -> pd.DataFrame:
    """Bars: probe bias-gradient norm per hidden layer at initialisation, grouped by net (log
    y), each seed a dot; the published value of each bar as a black bar-wide line with a
    diamond. Returns :func:`init_norm_table`."""
    table = init_norm_table(traces, runs, reference, experiment)
    runs = by_activation(runs, experiment)
    seeds = _seed_norms(traces, runs)
    groups = list(table.groupby(GROUP_KEYS, sort=False).groups)
    colors = layer_colors(int(table["depth"].max()) if len(table) else 1)
    values = pd.concat([table["measured"], table["reference"].dropna(), seeds["grad_norm"]])
    limits = decade_limits(values)

    with style():
        fig = Figure(figsize=(max(6.0, 0.95 * len(table) + 3.2), 4.6), layout="constrained")
        ax = fig.subplots()
        if table.empty:
            empty_note(ax, f"no probe gradients at initialisation for {experiment!r}")
        for g, key in enumerate(groups):
            _net_bars(ax, g, key, table, seeds, colors)
        ax.set_yscale("log")
        if limits is not None:
            ax.set_ylim(limits[0], limits[1] * 3)  # headroom for the value labels
        _net_axis(ax, table, groups)
        ax.set_ylabel("‖∂C/∂b‖ at initialisation,\nprobe set (log)")
        _legend(fig, table, colors, reference)
        title = figure_title("Gradient norms at initialisation, per hidden layer", experiment, runs)
        title += "\nlabels: measured (published)"
        suptitle(fig, title)
        save(fig, out)
    return table
