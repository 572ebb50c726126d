"""The edge of chaos (issue 23; Schoenholz et al. 2017, Fig. 5): the trainability heat map over
depth × σ_w² with the mean-field χ₁ = 1 line and 6 ξ_c curve, and the measured per-layer
gradient slope at initialisation against the predicted ln χ₁ / 2. Input columns:
docs/outputs.md (runs.parquet's ``weight_variance``, ``bias_variance``, ``grad_slope_init``,
``grad_slope_predicted``; metrics.parquet's ``train_acc``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradsweep import meanfield
from gradsweep.claims import correlation_depth, trainable_cells
from gradsweep.facets import configs_of
from gradsweep.plotting.style import (
    empty_note,
    layer_colors,
    save,
    style,
    suptitle,
    with_datasets,
)
from gradsweep.verdicts import CHANCE, TRAINED_AT

CURVE_POINTS = 48  # σ_w² values the 6 ξ_c curve is computed at (~0.2 s each in the chaos)
CURVE_COLOR = "white"
CRITICAL_COLOR = "#d6604d"


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted grid values: midpoints inside, half a step beyond the ends."""
    if len(values) == 1:
        return np.array([values[0] - 0.5, values[0] + 0.5])
    mid = (values[1:] + values[:-1]) / 2
    return np.concatenate([[2 * values[0] - mid[0]], mid, [2 * values[-1] - mid[-1]]])


def six_xi_c_curve(activation: str, sigma_b2: float, lo: float, hi: float) -> pd.DataFrame:
    """6 ξ_c over σ_w² in [lo, hi] (columns weight_variance, six_xi_c), denser near χ₁ = 1."""
    critical = float(meanfield.critical_sigma_w2(activation, sigma_b2))
    grid = np.linspace(lo, hi, CURVE_POINTS // 2)
    if lo < critical < hi:  # where ξ_c diverges: points closing in on it from both sides
        span = np.geomspace(1e-3, 1.0, CURVE_POINTS // 4)
        grid = np.concatenate(
            [grid, critical - span * (critical - lo), critical + span * (hi - critical)]
        )
    grid = np.unique(np.clip(grid, lo, hi))
    xi = [correlation_depth(activation, w, sigma_b2) for w in grid]
    return pd.DataFrame({"weight_variance": grid, "six_xi_c": 6 * np.asarray(xi)})


def _heat(ax: Axes, table: pd.DataFrame) -> object:
    """The mean best training accuracy per (σ_w², depth) cell; a hatched cell: not recorded."""
    w = np.sort(table["weight_variance"].unique())
    d = np.sort(table["depth"].unique())
    grid = table.pivot_table(index="depth", columns="weight_variance", values="train_acc")
    grid = grid.reindex(index=d, columns=w)
    # steps of 10 % from chance: the trained threshold is a colour boundary
    norm = BoundaryNorm(np.arange(0, 101, 10), 256)
    mesh = ax.pcolormesh(_edges(w), _edges(d.astype(float)), 100 * grid.to_numpy(),
                         cmap="viridis", norm=norm, shading="flat")  # fmt: skip
    ax.set_facecolor("0.85")
    untrained = table[~table["trained"]]
    ax.scatter(untrained["weight_variance"], untrained["depth"], marker="x", s=14, color="white",
               lw=0.8)  # fmt: skip
    ax.set_yticks(d)
    return mesh


def _theory_lines(ax: Axes, table: pd.DataFrame) -> list[Line2D]:
    """The χ₁ = 1 line and the 6 ξ_c curve of the configs' activation and σ_b²."""
    act = str(table["activation"].iloc[0])
    sb2 = float(table["bias_variance"].iloc[0])
    lo, hi = ax.get_xlim()
    curve = six_xi_c_curve(act, sb2, lo, hi)
    ax.plot(curve["weight_variance"], curve["six_xi_c"], color=CURVE_COLOR, lw=2.2)
    ax.plot(curve["weight_variance"], curve["six_xi_c"], color="black", lw=0.8, ls=(0, (4, 3)))
    critical = float(meanfield.critical_sigma_w2(act, sb2))
    ax.axvline(critical, color=CRITICAL_COLOR, lw=1.6)
    return [
        Line2D([], [], color=CRITICAL_COLOR, lw=1.6, label=f"χ₁ = 1 (σ_w² = {critical:.3g})"),
        Line2D(
            [],
            [],
            color="black",
            lw=1.2,
            ls=(0, (4, 3)),
            label="L = 6 ξ_c: trainable below (theory)",
        ),  # fmt: skip
    ]


def plot_trainability(
    runs: pd.DataFrame, metrics: pd.DataFrame, out: str | Path, experiment: str | None = None
) -> pd.DataFrame:
    """Schoenholz et al.'s Fig. 5: per config (depth × σ_w², one activation and σ_b²) the mean
    over seeds of the best training-set accuracy after any epoch, as a heat map, with the
    mean-field χ₁ = 1 line and the 6 ξ_c curve; configs that did not train (below
    verdicts.TRAINED_AT) are crossed. Returns gradsweep.claims.trainable_cells."""
    if experiment is not None and "experiment" in runs:
        runs = runs[runs["experiment"] == experiment]
    table = trainable_cells(runs, metrics) if len(runs) else pd.DataFrame()
    keys = ["activation", "bias_variance"]
    with style():
        fig = Figure(figsize=(8.0, 6.6), layout="constrained")
        ax = fig.subplots()
        if table.empty or table[keys].drop_duplicates().shape[0] != 1:
            empty_note(ax, "needs configs of one activation and one σ_b² with a mean-field σ_w²")
            save(fig, out)
            return table
        mesh = _heat(ax, table)
        ax.set_ylim(*_edges(np.sort(table["depth"].unique()).astype(float))[[0, -1]])
        handles = _theory_lines(ax, table)
        ax.set_xlim(*_edges(np.sort(table["weight_variance"].unique()))[[0, -1]])
        ax.grid(False)
        ax.set_xlabel("σ_w² (weights N(0, σ_w²/fan_in))")
        ax.set_ylabel("depth L (hidden layers)")
        cbar = fig.colorbar(mesh, ax=ax)
        cbar.set_label(
            f"best training-set accuracy (%), mean over seeds\nchance {100 * CHANCE:.0f} %"
        )
        below = f"did not train (< {100 * TRAINED_AT:.0f} %), white cross"
        handles.append(Line2D([], [], marker="x", ls="", color="black", ms=5, label=below))
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
        row = table.iloc[0]
        n = int(table["n"].max())
        seeds = f"mean over {n} seeds" if n > 1 else "one seed per config"
        suptitle(
            fig,
            with_datasets(f"Trainability at the edge of chaos — {experiment or 'all runs'}", runs)
            + f"\n{row['activation']}, σ_b² = {row['bias_variance']:g}; best training accuracy "
            f"after any epoch, {seeds}; theory: mean field (Schoenholz et al. 2017)",
        )
        save(fig, out)
    return table


def slope_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per config the measured slope at initialisation (``grad_slope_init``: mean, min and
    max over seeds) and the predicted ln χ₁ / 2, where both are finite."""
    need = {"grad_slope_init", "grad_slope_predicted"}
    if not need <= set(runs.columns):
        return pd.DataFrame()
    rows = []
    for _, cfg in configs_of(runs).iterrows():
        members = runs[runs["config_id"] == cfg["config_id"]]
        m = pd.to_numeric(members["grad_slope_init"], errors="coerce").dropna()
        p = pd.to_numeric(members["grad_slope_predicted"], errors="coerce").dropna()
        if m.empty or p.empty:
            continue
        rows.append({
            "config_id": cfg["config_id"], "depth": int(cfg["depth"]),
            "activation": cfg["activation"], "init": cfg["init"],
            "weight_variance": cfg.get("weight_variance", np.nan), "n": len(m),
            "predicted": float(p.iloc[0]), "measured": float(m.mean()),
            "measured_min": float(m.min()), "measured_max": float(m.max()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def plot_slopes(runs: pd.DataFrame, out: str | Path, experiment: str | None = None) -> pd.DataFrame:
    """The measured change of ln RMS‖δ_l‖ per layer toward the input at initialisation against
    the mean-field ln χ₁ / 2, one point per config (mean over seeds, bar: min–max), coloured
    by depth, with the identity line. Returns :func:`slope_table`."""
    if experiment is not None and "experiment" in runs:
        runs = runs[runs["experiment"] == experiment]
    table = slope_table(runs)
    with style():
        fig = Figure(figsize=(7.0, 6.0), layout="constrained")
        ax = fig.subplots()
        if table.empty:
            empty_note(ax, "no config with a measured and a predicted slope")
            save(fig, out)
            return table
        depths = sorted(table["depth"].unique())
        colors = dict(zip(depths, layer_colors(len(depths)), strict=True))
        for depth in depths:
            t = table[table["depth"] == depth]
            yerr = np.vstack([t["measured"] - t["measured_min"], t["measured_max"] - t["measured"]])
            ax.errorbar(t["predicted"], t["measured"], yerr=yerr, fmt="o", ms=4, lw=0.9,
                        color=colors[depth], label=f"L = {depth}")  # fmt: skip
        lims = [min(table["predicted"].min(), table["measured_min"].min()),
                max(table["predicted"].max(), table["measured_max"].max())]  # fmt: skip
        pad = 0.05 * (lims[1] - lims[0] or 1)
        lims = [lims[0] - pad, lims[1] + pad]
        ax.plot(lims, lims, color="black", lw=1, ls="--", label="measured = predicted")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_aspect("equal")
        ax.set_xlabel("predicted ln χ₁ / 2 per layer (mean field)")
        ax.set_ylabel("measured slope of ln RMS‖δ_l‖ per layer toward the input, at init")
        ax.legend(fontsize=7, ncol=2 if len(depths) > 6 else 1, loc="upper left", title="depth",
                  title_fontsize=7)  # fmt: skip
        n = int(table["n"].max())
        suptitle(
            fig,
            f"Gradient slope at initialisation vs mean field — {experiment or 'all runs'}"
            "\n< 0: vanishing toward the input, > 0: exploding; "
            + (f"point: mean over {n} seeds, bar: min–max" if n > 1 else "one seed per config"),
        )
        save(fig, out)
    return table
