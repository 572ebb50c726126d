"""Per-experiment learning curves: validation accuracy and training loss per epoch, one panel
per config on the pages of the gradient figures (data.pages, the page and panel helpers of
plotting.gradients), so ``learning_curves<page>.png`` sits beside ``gradients<page>.png``.

Each panel draws the validation accuracy on its left axis (linear, 0–100 %, chance marked)
and the training loss on a twin right axis (log, one range per page). The seeds that learned
(``verdicts.never_learned``: best validation accuracy at least twice chance) are a mean line
with a min–max band; each seed that never learned is a thin line of its own, so "learns
slowly" and "never learns" look different, and the title counts them. Diverged seeds are
marked as in the gradient figures: a red title and a dashed red line where they diverged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from gradsweep import facets as F
from gradsweep.plotting import data as D
from gradsweep.plotting.gradients import (
    RIGHT,
    experiment_page,
    figure_title,
    page_figure,
    page_labels,
    panel_axes,
)
from gradsweep.plotting.style import (
    BAND_ALPHA,
    DIVERGED_COLOR,
    TWIN_LABEL,
    decade_limits,
    empty_note,
    save,
    style,
)
from gradsweep.verdicts import CHANCE, never_learned

CURVES = ("val_acc", "train_loss")  # metrics.parquet columns drawn
ACC_COLOR = "#2166ac"  # validation accuracy, left axis
LOSS_COLOR = (
    "#e08214"  # orange: apart from the diverged marks' crimson  # training loss, right axis
)
CHANCE_COLOR = "0.45"
ACC_YLABEL = "validation accuracy (solid)"
LOSS_YLABEL = "training loss (dashed, log)"


def curve_table(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Long table of the curves: one row per run, metric (``val_acc``, ``train_loss``) and
    epoch with a finite value, with the run's config_id and ``learned`` (not
    ``verdicts.never_learned``)."""
    per_run = runs.drop_duplicates("run_id")
    learned = pd.Series(
        ~never_learned(per_run["best_val_acc"]).to_numpy(), index=per_run["run_id"].to_numpy()
    )
    config = pd.Series(per_run["config_id"].to_numpy(), index=per_run["run_id"].to_numpy())
    m = metrics[D.isin(metrics["run_id"], per_run["run_id"])]
    long = m.melt(id_vars=["run_id", "epoch"], value_vars=list(CURVES), var_name="metric")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long = long[np.isfinite(long["value"])]
    ids = long["run_id"].astype(str)
    return long.assign(config_id=ids.map(config).to_numpy(), learned=ids.map(learned).to_numpy())


def curve_bands(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per config, metric and epoch, over the config's seeds that learned: ``mean``, ``lo``
    (min) and ``hi`` (max) of the finite values and ``n``, how many seeds have one."""
    return _bands(curve_table(metrics, runs))


def _bands(long: pd.DataFrame) -> pd.DataFrame:
    g = long[long["learned"]].groupby(["config_id", "metric", "epoch"], sort=True)["value"]
    return g.agg(mean="mean", lo="min", hi="max", n="size").reset_index()


def _panel_title(ax: Axes, cfg: pd.Series, members: pd.DataFrame, axes: list[str]) -> None:
    """The config and its seeds; how many diverged (red title) and never learned."""
    n = len(members)
    n_div = int((members["status"] == "diverged").sum())
    n_never = int(never_learned(members["best_val_acc"]).sum())
    extra = [f"{k} of {n} {what}" for k, what in ((n_div, "diverged"), (n_never, "never learned"))
             if k]  # fmt: skip
    head = D.config_title(cfg, axes, n)
    ax.set_title(head + ("\n" + "; ".join(extra) if extra else ""), fontsize=8,
                 color=DIVERGED_COLOR if n_div else "black")  # fmt: skip


def _draw_curves(
    ax: Axes, twin: Axes, bands: pd.DataFrame, stuck: pd.DataFrame, marker: str | None
) -> None:
    """One config: the mean line and min–max band of the seeds that learned, per metric, and
    a thin line per seed that never learned."""
    for metric, target, color, ls in (("val_acc", ax, ACC_COLOR, "-"),
                                      ("train_loss", twin, LOSS_COLOR, "--")):  # fmt: skip
        b = bands[bands["metric"] == metric]
        if len(b):
            target.plot(b["epoch"], b["mean"], color=color, ls=ls, lw=1.5, marker=marker, ms=2.5)
            if (b["n"] > 1).any():
                target.fill_between(b["epoch"], b["lo"], b["hi"], color=color, alpha=BAND_ALPHA,
                                    lw=0)  # fmt: skip
        for _, line in stuck[stuck["metric"] == metric].groupby("run_id", observed=True):
            target.plot(line["epoch"], line["value"], color=color, ls=ls, lw=0.9)


def _twin(ax: Axes) -> Axes:
    """The panel's right axis for the loss; not a panel of its own (style.panel_count)."""
    twin = ax.twinx()
    twin.set_label(TWIN_LABEL)
    twin.grid(False)
    return twin


def _right_labels(fig: Figure, twins: dict[str, Axes]) -> None:
    """Loss tick labels only on the last panel of each row (the left axes share y too)."""
    last: dict[int, tuple[int, Axes]] = {}
    for twin in twins.values():
        spec = twin.get_subplotspec()
        row, col = spec.rowspan.start, spec.colspan.start
        if col >= last.get(row, (-1, twin))[0]:
            last[row] = (col, twin)
    keep = {id(t) for _, t in last.values()}
    for twin in twins.values():
        twin.tick_params(labelright=id(twin) in keep, labelsize=7, colors=LOSS_COLOR, length=0)
    w = fig.get_figwidth()
    fig.text(1 - (RIGHT - 0.45) / w, 0.5, LOSS_YLABEL, rotation=90, ha="center", va="center",
             color=LOSS_COLOR, fontsize=10)  # fmt: skip


def _legend(fig: Figure, *, band: bool, stuck: bool, diverged: bool) -> None:
    items = [
        (Line2D([], [], color=ACC_COLOR, lw=1.5), "validation accuracy\n(left axis)"),
        (Line2D([], [], color=LOSS_COLOR, lw=1.5, ls="--"), "training loss\n(right axis)"),
        (Line2D([], [], color=CHANCE_COLOR, lw=1, ls=":"), f"chance ({CHANCE:.0%})"),
    ]
    if band:
        items.append((Patch(color="0.6", alpha=0.5), "min–max over the\nseeds that learned"))
    if stuck:
        items.append((Line2D([], [], color="0.3", lw=0.9), "thin: a seed that\nnever learned"))
    if diverged:
        items.append((Line2D([], [], color=DIVERGED_COLOR, ls="--"), "a seed diverged"))
    handles, labels = zip(*items, strict=True)
    x = 1 - (RIGHT - 0.7) / fig.get_figwidth()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(x, 0.5), frameon=False,
               fontsize=8)  # fmt: skip


def plot_learning_curves(
    metrics: pd.DataFrame,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
    page: str = "",
) -> pd.DataFrame:
    """One panel per config of the page (the panels of ``gradients<page>.png``): validation
    accuracy (left, %) and training loss (right, log) vs epoch, the mean over the seeds that
    learned with a min–max band, a thin line per seed that never learned, chance marked.
    Returns the curves drawn: :func:`curve_bands` of the page's configs."""
    pg, runs = experiment_page(runs, experiment, page)
    axes = F.varying_axes(runs)
    runs = F.with_axes(runs)
    long = curve_table(metrics, runs)
    bands = _bands(long)
    by_config = dict(tuple(bands.groupby("config_id", sort=False)))
    stuck = long[~long["learned"]]
    ok = long[D.isin(long["run_id"], runs.loc[runs["status"] != "diverged", "run_id"])]
    loss = ok.loc[ok["metric"] == "train_loss", "value"]
    limits = decade_limits(loss if len(loss) else long.loc[long["metric"] == "train_loss", "value"])
    max_x = float(long["epoch"].max()) if len(long) else 1.0
    marker = "o" if max_x <= 30 else None
    diverged_at = D.divergence_points(metrics, runs, "epoch")
    with style():
        fig, panels = page_figure(pg, axes)
        twins = {}
        for _, cfg in pg.configs.iterrows():
            cid, ax = cfg["config_id"], panels[cfg["config_id"]]
            members = runs[runs["config_id"] == cid]
            _panel_title(ax, cfg, members, axes)
            mine = stuck[stuck["config_id"] == cid]
            if cid not in by_config and mine.empty:
                empty_note(ax, "no finite metrics")
                continue
            twins[cid] = twin = _twin(ax)
            _draw_curves(ax, twin, by_config.get(cid, bands.head(0)), mine, marker)
            ax.axhline(CHANCE, color=CHANCE_COLOR, ls=":", lw=1, zorder=1)
            for run_id in members["run_id"]:
                if run_id in diverged_at:
                    ax.axvline(diverged_at[run_id], color=DIVERGED_COLOR, ls="--", lw=0.9)
            panel_axes(twin, "epoch", max_x, limits)
            ax.set_ylim(0, 1)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.tick_params(labelsize=7, length=0)
            ax.tick_params(axis="y", colors=ACC_COLOR)
        _right_labels(fig, twins)
        title = figure_title("Learning curves", experiment, runs)
        page_labels(fig, pg, xlabel="epoch (0 = at initialisation)", ylabel=ACC_YLABEL,
                    title=title, notes=[])  # fmt: skip
        fig.supylabel(ACC_YLABEL, x=0.15 / fig.get_figwidth(), color=ACC_COLOR)
        _legend(fig, band=bool((bands["n"] > 1).any()), stuck=not stuck.empty,
                diverged=bool(diverged_at))  # fmt: skip
        save(fig, out)
    order = {cid: i for i, cid in enumerate(pg.configs["config_id"])}  # the panels' order
    shown = bands[D.isin(bands["config_id"], list(order))]
    return shown.sort_values(
        ["config_id", "metric", "epoch"],
        key=lambda c: c.map(order) if c.name == "config_id" else c,
        kind="stable",
    ).reset_index(drop=True)


__all__ = ["CURVES", "curve_bands", "curve_table", "plot_learning_curves"]
