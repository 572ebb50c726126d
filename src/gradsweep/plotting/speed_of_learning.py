"""Nielsen's "speed of learning" picture for the nndl demo and the norms-at-initialisation
experiment: one panel per config, each hidden layer's bias-gradient norm vs SGD step or epoch
(input columns: docs/outputs.md). The panels are the per-experiment gradient figures' own
(gradients.seed_bands, draw_layer_lines, smooth_steps), laid out for the article."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
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
    trace_x_axis,
)
from gradsweep.plotting.gradients import draw_layer_lines, seed_bands, smooth_steps
from gradsweep.plotting.style import (
    DIVERGED_COLOR,
    PROBE_YLABEL,
    REFERENCE_COLOR,
    STEP_YLABEL,
    decade_limits,
    empty_note,
    layer_colors,
    mark_divergence,
    save,
    style,
    suptitle,
)
from gradsweep.reference import published


@dataclass(frozen=True)
class _Traces:
    """What the panels draw from."""

    source: str  # "step" or "probe"
    x: str  # "step" or "epoch"
    traced: pd.DataFrame  # the runs with traces, in drawing order
    raw: pd.DataFrame  # their finite hidden-layer rows, for the medians
    bands: dict[str, pd.DataFrame]  # per config: seed bands of the (smoothed) rows
    window: int  # widest rolling-median window (1: none)
    diverged_at: dict[str, float]
    refs: dict[str, Any]  # per config: published norms at initialisation, or None
    depth: int
    limits: tuple[float, float] | None  # log y shared by the finished runs (and refs)
    max_x: float

    @property
    def colors(self) -> list:
        return layer_colors(self.depth)


def _traces(
    traces: pd.DataFrame, runs: pd.DataFrame, source: str, reference: Mapping[str, Any] | None
) -> _Traces:
    """The runs' hidden-layer rows of ``source``; step traces smoothed per seed."""
    x = "step" if source == "step" else "epoch"
    tr = D.hidden_bias(traces, runs, source)
    diverged_at = D.divergence_points(tr, runs, x)
    traced = runs[D.isin(runs["run_id"], tr["run_id"])]
    configs = traced.drop_duplicates("config_id")
    tr = D.finite_positive(tr, "grad_norm").sort_values(["run_id", "layer", x])
    smooth, window = smooth_steps(tr) if source == "step" else (tr, 1)
    ok_ids = traced.loc[traced["status"] != "diverged", "run_id"]
    shown = smooth.loc[D.isin(smooth["run_id"], ok_ids), "grad_norm"]
    refs = {r["config_id"]: published(r, reference) for _, r in configs.iterrows()}
    ref_values = pd.Series([v for vals in refs.values() if vals for v in vals], dtype=float)
    return _Traces(
        source=source,
        x=x,
        traced=traced,
        raw=tr,
        bands=seed_bands(smooth, x),
        window=window,
        diverged_at=diverged_at,
        refs=refs,
        depth=int(traced["depth"].max()) if len(traced) else 1,
        limits=decade_limits(pd.concat([shown, ref_values])),
        max_x=float(tr[x].max()) if len(tr) else 1.0,
    )


def _speed_summary(data: pd.DataFrame, x: str) -> dict[str, float]:
    """Median over x of each layer's norm, and of the last ÷ first hidden layer ratio."""
    wide = data.pivot_table(index=x, columns="layer", values="grad_norm")
    out = {f"median_layer{int(c)}": float(wide[c].median()) for c in sorted(wide.columns)}
    if wide.shape[1] > 1:
        ratio = (wide.iloc[:, -1] / wide.iloc[:, 0]).replace([np.inf, -np.inf], np.nan)
        out["median_ratio"] = float(ratio.median())
    return out


def _figure(n: int) -> tuple[Figure, list[Axes], int]:
    """Up to three panels a row; a single panel gets its legend on the right."""
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    legend_w = 2.8 if ncols == 1 else 0.0
    fig = Figure(figsize=(4.3 * ncols + 1.0 + legend_w, 3.1 * nrows + 1.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes, ncols


def _reference_marks(ax: Axes, values: list[float] | None, colors: list) -> None:
    """The published norms at initialisation: a black-edged diamond per layer at x = 0."""
    for layer, value in enumerate(values or [], start=1):
        ax.plot(
            [0],
            [value],
            "D",
            ms=6,
            mfc=colors[layer - 1],
            mec=REFERENCE_COLOR,
            mew=1.2,
            zorder=5,
            clip_on=False,
        )


def _panel(ax: Axes, cfg: pd.Series, t: _Traces) -> dict[str, Any] | None:
    """One config: its layers' lines and bands, the published marks and the median ratio in
    the title. Returns the medians it drew (None for an empty panel)."""
    members = t.traced[t.traced["config_id"] == cfg["config_id"]]
    n_div = int((members["status"] == "diverged").sum())
    title = (
        f"{cfg['activation']} · {cfg['init']}\n{F.widths_label(cfg['widths'])} units"
        f" · n = {len(members)} seed{'s' if len(members) != 1 else ''}"
    )
    if n_div:
        title += f" · {n_div} diverged"
    ax.set_title(title, color=DIVERGED_COLOR if n_div else "black")
    data = t.bands.get(cfg["config_id"])
    if data is None or data.empty:
        empty_note(ax, "no finite gradients")
        return None
    draw_layer_lines(ax, data, t.x, t.colors, lw=1.4)
    _reference_marks(ax, t.refs.get(cfg["config_id"]), t.colors)
    summary = _speed_summary(t.raw[t.raw["config_id"] == cfg["config_id"]], t.x)
    if "median_ratio" in summary and np.isfinite(summary["median_ratio"]):
        over = "iterations" if t.x == "step" else "epochs"
        ax.set_title(
            f"{ax.get_title()}\nlayer {int(cfg['depth'])} ÷ layer 1: "
            f"×{format_ratio(summary['median_ratio'])} (median, {over})",
            color=ax.title.get_color(),
        )
    ax.set_yscale("log")
    own = t.limits if not n_div else decade_limits(data["gmean"])
    if own is not None:
        ax.set_ylim(*own)
    trace_x_axis(ax, t.source, t.max_x)
    for run_id in members["run_id"]:
        mark_divergence(ax, t.diverged_at.get(run_id))
    return {"config_id": cfg["config_id"], "activation": cfg["activation"],
            "n_seeds": len(members), **summary}  # fmt: skip


def _labels(fig: Figure, bottom: list[Axes], t: _Traces, experiment: str | None) -> None:
    """x label under the bottom row, the y label and the title (what line and band are)."""
    xlabel = (
        "iteration (one mini-batch update each)"
        if t.source == "step"
        else "epoch (0 = at initialisation)"
    )
    for ax in bottom:
        ax.set_xlabel(xlabel)
    fig.supylabel(STEP_YLABEL if t.source == "step" else PROBE_YLABEL)
    title = figure_title("Speed of learning per hidden layer", experiment, t.traced)
    title += "\n(line: geometric mean over seeds, band: min–max"
    if t.window > 1:
        title += f"; each seed a rolling median over {t.window} iterations"
    title += ")"
    suptitle(fig, title)


def _legend(fig: Figure, t: _Traces, reference: Mapping[str, Any] | None, ncols: int) -> None:
    """The layers (and the published marks): right of a single panel, else below."""
    handles = [Line2D([], [], color=c, lw=2) for c in t.colors]
    names = [f"hidden layer {i}" for i in range(1, t.depth + 1)]
    names[0] += " (input side)"
    if t.depth > 1:
        names[-1] += " (output side)"
    if any(t.refs.values()):
        handles.append(Line2D([], [], ls="", marker="D", mfc="white", mec=REFERENCE_COLOR, mew=1.2))
        names.append(f"published, at initialisation:\n{reference_source(reference, 60)}")
    if ncols == 1:  # one panel: a legend row would be wider than the figure
        fig.legend(handles, names, loc="outside right center", frameon=False, fontsize=9)
    else:
        fig.legend(
            handles, names, loc="outside lower center", ncol=min(len(names), 3), frameon=False
        )


def plot_speed_of_learning(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
    *,
    source: str = "step",
    reference: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Nielsen's "speed of learning" picture: one panel per config (sigmoid first; seeds as a
    geometric-mean line with a min–max band), each hidden
    layer's bias-gradient norm vs SGD step (``source="step"``) or epoch (``"probe"``), log y
    shared by the finished runs; each panel states the median last ÷ first layer ratio.
    With a ``reference`` block (metric ``probe_bias_norms_init``) the published norms at
    initialisation are drawn as black diamonds at epoch 0.

    Returns one row per config with the medians it drew.
    """
    t = _traces(traces, by_activation(runs, experiment), source, reference)
    configs = t.traced.drop_duplicates("config_id")
    rows = []
    with style():
        fig, axes, ncols = _figure(max(1, len(configs)))
        if configs.empty:
            empty_note(axes[0], f"no {source} traces for experiment {experiment!r}")
        for ax, (_, cfg) in zip(axes, configs.iterrows(), strict=False):
            row = _panel(ax, cfg, t)
            if row is not None:
                rows.append(row)
        _labels(fig, axes[-ncols:], t, experiment)
        _legend(fig, t, reference, ncols)
        save(fig, out)
    result = pd.DataFrame(rows)
    ratio_last = [c for c in result.columns if c != "median_ratio"] + ["median_ratio"]
    return result[ratio_last] if "median_ratio" in result else result
