"""The chain rule made visible: per-layer diagnostics of an experiment's configs vs epoch
(columns of traces.parquet: docs/outputs.md).

One column per config (seeds as a mean line with a min–max band), seven rows of diagnostics.
An image holds at most ``MAX_DIAG_CONFIGS`` configs (7 rows × 3 = 21 panels); an experiment
with more shows the most informative ones — the highest and lowest geometric-mean gradient
ratio at initialisation and the config that learned worst — and the title names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from gradsweep import facets as F
from gradsweep.io import DIAGNOSTICS
from gradsweep.plotting import data as D
from gradsweep.plotting.style import (
    BAND_ALPHA,
    DIVERGED_COLOR,
    decade_limits,
    empty_note,
    layer_colors,
    layer_legend,
    mark_divergence,
    save,
    seed_legend,
    several_seeds,
    style,
    suptitle,
    with_datasets,
)
from gradsweep.verdicts import has_ratio

# Columns of traces.parquet the diagnostics figure reads (probe rows, bias param).
DIAGNOSTIC_COLUMNS = (*D.TRACE_COLUMNS, *DIAGNOSTICS)
SATURATING = {"sigmoid", "tanh", "softsign"}  # |z| > 2 means saturated only for these
MAX_DERIVATIVE = {"sigmoid": 0.25}  # the others' derivatives reach 1
MAX_DIAG_CONFIGS = 3  # configs (columns) per image: 7 rows × 3 = 21 panels


# (column, row label, scale): "log", "linear" or "percent" (a fraction shown in %)
DIAGNOSTIC_ROWS: list[tuple[str, str, str]] = [
    ("grad_norm", "‖∂C/∂b‖, probe\n(log)", "log"),
    ("act_deriv", "mean |σ′(z)|", "linear"),
    ("weight_norm", "‖W‖ incoming\n(Frobenius, log)", "log"),
    ("chain_factor", "chain factor\nmean|σ′(zˡ)|·‖Wˡ⁺¹‖ (log)", "log"),
    ("saturated_frac", "saturated\n|z| > 2 (%)", "percent"),
    ("dead_frac", "dead units (%)", "percent"),
    ("same_sign_frac", "same-sign units (%)", "percent"),
]


def diagnostics_table(traces: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Probe rows of hidden layers, one per run × layer × epoch, with grad_norm and the
    chain-rule diagnostics (bias param: the diagnostics repeat on kernel rows).

    A run's epoch at which any hidden layer's gradient or weight norm is NaN or infinite (the
    net has diverged) has every value set to NaN: diagnostics of broken weights mean nothing.
    """
    tr = D.hidden_bias(traces, runs, "probe")
    cols = ["run_id", "config_id", "epoch", "layer", "grad_norm"]
    cols += [c for c in DIAGNOSTICS if c in tr]
    data = tr[cols].sort_values(["run_id", "layer", "epoch"]).reset_index(drop=True)
    values = cols[4:]
    checked = [c for c in ("grad_norm", "weight_norm") if c in data]
    broken = ~np.isfinite(data[checked].astype(float)).all(axis=1)
    broken = broken.groupby([data["run_id"], data["epoch"]]).transform("any")
    data.loc[broken, values] = np.nan
    return data


def _diag_limits(data: pd.DataFrame, ok_ids: pd.Series) -> dict[str, tuple[float, float]]:
    limits = {}
    shared = data[D.isin(data["run_id"], ok_ids)]
    if shared.empty:  # every run diverged: share what they have
        shared = data
    for col, _, scale in DIAGNOSTIC_ROWS:
        if col not in data:
            continue
        v = pd.to_numeric(shared[col], errors="coerce")
        v = v[np.isfinite(v)]
        if scale == "log":
            lim = decade_limits(v)
            if lim is not None:
                limits[col] = lim
        elif scale == "linear" and len(v):
            limits[col] = (0.0, max(0.3, float(v.max()) * 1.1))
    return limits


def _diag_panel(
    ax: Axes,
    data: pd.DataFrame,
    config: Mapping,
    col: str,
    scale: str,
    colors: list,
    limits: Mapping[str, tuple[float, float]],
    markers: bool,
    diverged: bool,
) -> None:
    """One diagnostic of one config: a line per layer (mean over seeds), band min–max."""
    act = str(config.get("activation"))
    if col not in data.columns.get_level_values(0) or data[(col, "mean")].notna().sum() == 0:
        empty_note(ax, "not recorded")
        return
    if col == "saturated_frac" and act not in SATURATING:
        ax.text(
            0.5,
            0.5,
            f"not meaningful\nfor {act}",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.5",
            fontsize=8,
        )
        ax.set_ylim(-3, 103)
        return
    factor = 100 if scale == "percent" else 1
    for layer, d in data.groupby(level="layer"):
        d = d.droplevel("layer")
        v = d[(col, "mean")]
        ok = np.isfinite(v) & ((v > 0) if scale == "log" else True)
        color = colors[int(layer) - 1]
        ax.plot(d.index[ok], v[ok] * factor, color=color, lw=1.4, marker="o" if markers else None,
                ms=2.5)  # fmt: skip
        lo, hi = d[(col, "min")][ok] * factor, d[(col, "max")][ok] * factor
        if (hi > lo).any():
            ax.fill_between(d.index[ok], lo, hi, color=color, alpha=BAND_ALPHA, lw=0)
    if scale == "log":
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())
        own = limits.get(col) if not diverged else decade_limits(data[(col, "mean")])
        if own is not None:
            ax.set_ylim(*own)
    elif scale == "percent":
        ax.set_ylim(-4, 104)
        ax.set_yticks([0, 50, 100])
    else:
        if col in limits:
            ax.set_ylim(*limits[col])
        peak = MAX_DERIVATIVE.get(act)
        if col == "act_deriv" and peak is not None:
            ax.axhline(peak, color="0.4", lw=0.8, ls=":")
            ax.annotate(
                "max ¼",
                (1, peak),
                xycoords=("axes fraction", "data"),
                xytext=(-2, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.3",
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 0.5},
                zorder=6,
            )


def pick_configs(runs: pd.DataFrame, k: int = MAX_DIAG_CONFIGS) -> tuple[list[str], str]:
    """All configs if at most ``k``; else the most informative ``k``: the highest and the
    lowest geometric-mean grad ratio at initialisation (of nets with 2+ hidden layers: one
    hidden layer has no ratio), then the lowest median best val acc (then the highest ratio at
    the end). Returns their config_ids and why they were picked."""
    configs = F.configs_of(runs)
    if len(configs) <= k:
        return list(configs["config_id"]), ""
    g = runs.groupby("config_id")

    def gmean(col: str) -> pd.Series:
        """Mean log ratio per config; none for nets with one hidden layer (no ratio)."""
        v = pd.to_numeric(runs[col], errors="coerce")
        if "depth" in runs:
            v = v.where(runs["depth"].map(has_ratio))
        return np.log10(v.where(np.isfinite(v) & (v > 0))).groupby(runs["config_id"]).mean()

    criteria = [
        ("highest ratio at init", gmean("grad_ratio_init").sort_values(ascending=False)),
        ("lowest ratio at init", gmean("grad_ratio_init").sort_values()),
        ("lowest accuracy", g["best_val_acc"].median().sort_values()),
        ("highest ratio at end", gmean("grad_ratio_final").sort_values(ascending=False)),
    ]
    picked: dict[str, str] = {}
    for why, order in criteria:
        for cid in order.dropna().index:
            if cid not in picked:
                picked[cid] = why
                break
        if len(picked) == k:
            break
    ids = [c for c in configs["config_id"] if c in picked]
    return ids, "; ".join(f"{i + 1}: {picked[c]}" for i, c in enumerate(ids))


def _column_title(
    ax: Axes, cfg: pd.Series, members: pd.DataFrame, axes_vary: list[str], j: int, why: str
) -> int:
    """The config (numbered when picked), its seeds and how many diverged (then in red);
    returns that number."""
    n_div = int((members["status"] == "diverged").sum())
    title = D.config_title(cfg, axes_vary, len(members))
    if why:
        title = f"({j + 1}) {title}"
    if n_div:
        title += f"\n{n_div} diverged"
    ax.set_title(title, fontsize=8, color=DIVERGED_COLOR if n_div else "black")
    return n_div


def _config_column(
    column: list[Axes],
    d: pd.DataFrame | None,
    cfg: pd.Series,
    members: pd.DataFrame,
    *,
    colors: list,
    limits: Mapping[str, tuple[float, float]],
    max_epoch: int,
    diverged_at: Mapping[str, float],
    n_div: int,
    ylabels: bool,
) -> None:
    """One config's diagnostics, a panel per DIAGNOSTIC_ROWS (``d``: its mean, min and max
    per layer and epoch), a dashed line where a seed diverged (labelled in the top panel)."""
    for i, (ax, (col, label, scale)) in enumerate(zip(column, DIAGNOSTIC_ROWS, strict=True)):
        if d is None or d.empty:
            empty_note(ax, "no probe rows")
            continue
        _diag_panel(ax, d, cfg, col, scale, colors, limits, max_epoch <= 30, n_div > 0)
        for run_id in members["run_id"]:
            if run_id in diverged_at:
                if i == 0:
                    mark_divergence(ax, diverged_at[run_id])
                else:
                    ax.axvline(diverged_at[run_id], color=DIVERGED_COLOR, ls="--", lw=1)
        if ylabels:
            ax.set_ylabel(label, fontsize=8)
        ax.set_xlim(-0.02 * max_epoch - 0.3, max_epoch * 1.02 + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.tick_params(labelsize=7)
    column[-1].set_xlabel("epoch")


def _title(runs: pd.DataFrame, experiment: str | None, n_shown: int, why: str) -> str:
    title = with_datasets(
        f"Chain-rule diagnostics per hidden layer — {experiment or 'all runs'}", runs
    )
    n_all = runs["config_id"].nunique() if len(runs) else 0
    if why:
        title += f"\n{n_shown} of {n_all} configs, picked as {why}"
    return title


def _first_last(data: pd.DataFrame, values: list[str], n_seeds: pd.Series) -> pd.DataFrame:
    """Per config and layer the diagnostics at the first and the last epoch, mean over seeds."""
    first_last = (
        data.groupby(["config_id", "run_id", "layer"], sort=False)[values]
        .agg(["first", "last"])
        .groupby(level=["config_id", "layer"], sort=False)
        .mean()
    )
    first_last.columns = [f"{c}_{w}" for c, w in first_last.columns]
    first_last = first_last.reset_index()
    return first_last.merge(n_seeds.rename("n_seeds"), left_on="config_id", right_index=True)


def plot_diagnostics(
    traces: pd.DataFrame, runs: pd.DataFrame, out: str | Path, experiment: str | None = None
) -> pd.DataFrame:
    """The chain rule made visible, one column per config (see the module docstring).

    Rows, each vs epoch with one line per hidden layer (mean over seeds, band min–max): the
    probe bias-gradient norm; mean |σ′(z)|; ‖W‖; the chain factor mean|σ′(zˡ)|·‖Wˡ⁺¹‖;
    saturated, dead and same-sign fractions. Returns the diagnostics at the first and last
    epoch per config and layer (mean over seeds) with the config's n_seeds.
    """
    if experiment is not None and "experiment" in runs:
        runs = runs[runs["experiment"] == experiment]
    ids, why = pick_configs(runs)
    shown = runs[D.isin(runs["config_id"], ids)]
    configs = F.configs_of(shown)
    axes_vary = F.varying_axes(runs)
    data = diagnostics_table(traces, shown)
    diverged_at = D.divergence_points(data, shown, "epoch")
    depth = int(shown["depth"].max()) if len(shown) else 1
    colors = layer_colors(depth)
    limits = _diag_limits(data, shown.loc[shown["status"] != "diverged", "run_id"])
    max_epoch = int(data["epoch"].max()) if len(data) else 1
    ncols = max(1, len(configs))
    n_rows = len(DIAGNOSTIC_ROWS)
    values = [c for c, _, _ in DIAGNOSTIC_ROWS if c in data]
    mean = data.groupby(["config_id", "layer", "epoch"])[values].agg(["mean", "min", "max"])
    n_seeds = data.groupby("config_id")["run_id"].nunique()

    with style():
        fig = Figure(figsize=(2.9 * ncols + 3.4, 1.45 * n_rows + 1.9), layout="constrained")
        grid = fig.subplots(n_rows, ncols, squeeze=False, sharex=True)
        if configs.empty:
            empty_note(grid[0, 0], f"no runs for experiment {experiment!r}")
        for j, (_, cfg) in enumerate(configs.iterrows()):
            cid = cfg["config_id"]
            members = shown[shown["config_id"] == cid]
            n_div = _column_title(grid[0, j], cfg, members, axes_vary, j, why)
            d = mean.xs(cid, level="config_id") if cid in n_seeds.index else None
            _config_column(
                list(grid[:, j]), d, cfg, members, colors=colors, limits=limits,
                max_epoch=max_epoch, diverged_at=diverged_at, n_div=n_div, ylabels=j == 0,
            )  # fmt: skip
        suptitle(fig, _title(runs, experiment, len(configs), why))
        layer_legend(
            fig,
            depth,
            extra=seed_legend(several_seeds(shown), mean="mean"),
        )
        save(fig, out)
    return _first_last(data, values, n_seeds)
