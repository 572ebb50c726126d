"""The article's figures: the activation functions behind the chain rule, the one-path net's
four panels, the nndl demo's speed of learning and Nielsen's gradient norms at initialisation
(input columns: docs/outputs.md).

Every function draws on a standalone Figure and leaves nothing open. Functions that show
measured data return the numbers they drew as a small DataFrame, for the rule's log and for
tests.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from gradsweep import facets as F
from gradsweep.facets import ACTIVATION_ORDER
from gradsweep.formatting import format_ratio
from gradsweep.plotting import data as D
from gradsweep.plotting.gradients import smooth_steps
from gradsweep.plotting.style import (
    BAND_ALPHA,
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
    thousands,
)
from gradsweep.reference import published

FUNCTION_COLOR = "#1b4f8a"
DERIVATIVE_COLOR = "#d95f02"


# --------------------------------------------------------------------------- helpers


def _by_activation(runs: pd.DataFrame, experiment: str | None) -> pd.DataFrame:
    """An experiment's runs, sigmoid-like activations first, then by depth, widths and seed."""
    if experiment is not None and "experiment" in runs.columns:
        runs = runs[runs["experiment"] == experiment]
    rank = {a: i for i, a in enumerate(ACTIVATION_ORDER)}
    order = runs.assign(
        _act=runs["activation"].map(lambda a: rank.get(str(a), len(rank))),
        _widths=runs["widths"].map(F.width_sort_key),  # 30-30 before 100-100
    )
    keys = ["_act", "activation", "depth", "_widths", "init", "seed", "run"]
    order = order.sort_values([k for k in keys if k in order], kind="stable")
    return order.drop(columns=["_act", "_widths"])


def _title(kind: str, experiment: str | None, runs: pd.DataFrame) -> str:
    title = f"{kind} — experiment {experiment or 'all runs'}"
    if len(runs) and "dataset" in runs:
        title += f" ({', '.join(map(str, runs['dataset'].dropna().unique()))})"
    return title


def _source(reference: Mapping[str, Any] | None, width: int = 34) -> str:
    """The reference block's ``source``, wrapped for a legend."""
    return textwrap.fill(str((reference or {}).get("source", "reference")), width)


def _sci(x: float) -> str:
    return format_ratio(x)


def _x_axis(ax: Axes, source: str, max_x: float) -> None:
    if source == "step":
        ax.set_xlim(0, max_x * 1.02)
        ax.xaxis.set_major_formatter(FuncFormatter(thousands))
    else:
        ax.set_xlim(-0.02 * max_x - 0.3, max_x * 1.02 + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))


def layer_order_fraction(norms: pd.DataFrame) -> float:
    """Fraction of rows (epochs) whose values strictly increase from layer 1 to the last."""
    if norms.shape[1] < 2 or norms.empty:
        return float("nan")
    return float((norms.diff(axis=1).iloc[:, 1:] > 0).all(axis=1).mean())


# --------------------------------------------------------------------------- activations


def _derivative_panel(ax: Axes, z: np.ndarray) -> None:
    sig = 1 / (1 + np.exp(-z))
    curves = [
        ("σ′ (sigmoid), ≤ ¼", sig * (1 - sig), "#1b4f8a", "-"),
        ("tanh′, ≤ 1", 1 - np.tanh(z) ** 2, "#7570b3", "-"),
        ("softplus′ = σ, < 1", sig, "#66a61e", (0, (4, 2))),
        ("ReLU′ ∈ {0, 1}", (z > 0).astype(float), "#d95f02", "-"),
    ]
    for label, y, color, ls in curves:
        ax.plot(z, y, color=color, ls=ls, lw=1.8, label=label)
    ax.axhline(0.25, color="0.4", lw=0.8, ls=":")
    ax.annotate(
        "¼ · ¼ · ¼ · ¼ ≈ 0.004:\nfour sigmoid layers scale\nthe gradient by at most this",
        (-5.8, 0.25),
        xytext=(0, 4),
        textcoords="offset points",
        va="bottom",
        fontsize=7.5,
        color="0.25",
    )
    ax.set_title("(d) the derivatives backprop multiplies, one per layer")
    ax.set_ylim(-0.05, 1.12)
    ax.legend(loc="center right", fontsize=7.5, frameon=True, framealpha=0.9)


def plot_activations(out: str | Path) -> None:
    """σ and σ′ (maximum ¼ at z = 0), ReLU and softplus with derivatives, tanh, and all the
    derivatives on one axis: the factors the chain rule multiplies in at every layer."""
    z = np.linspace(-6, 6, 1201)
    sig = 1 / (1 + np.exp(-z))
    with style():
        fig = Figure(figsize=(10.5, 7.2), layout="constrained")
        (a, b), (c, d) = fig.subplots(2, 2)

        a.plot(z, sig, color=FUNCTION_COLOR, lw=2, label="σ(z) = 1 / (1 + e⁻ᶻ)")
        a.plot(z, sig * (1 - sig), color=DERIVATIVE_COLOR, lw=2, ls="--", label="σ′(z) = σ(1 − σ)")
        a.plot([0], [0.25], "o", color=DERIVATIVE_COLOR, ms=6, zorder=5)
        a.annotate(
            "max σ′ = σ′(0) = ¼",
            (0, 0.25),
            xytext=(14, 18),
            textcoords="offset points",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "0.3", "lw": 0.8},
        )
        a.set_title("(a) sigmoid and its derivative")
        a.set_ylim(-0.05, 1.12)

        relu = np.maximum(z, 0)
        softplus = np.log1p(np.exp(z))
        b.plot(z, relu, color=FUNCTION_COLOR, lw=2, label="ReLU(z) = max(0, z)")
        b.plot(z[z < 0], np.zeros((z < 0).sum()), color=DERIVATIVE_COLOR, lw=2, ls="--")
        b.plot(
            z[z > 0],
            np.ones((z > 0).sum()),
            color=DERIVATIVE_COLOR,
            lw=2,
            ls="--",
            label="ReLU′(z) = 0 or 1",
        )
        b.plot(z, softplus, color="#66a61e", lw=1.6, label="softplus(z) = ln(1 + eᶻ)")
        b.plot(z, sig, color="#66a61e", lw=1.4, ls=":", label="softplus′(z) = σ(z)")
        b.set_title("(b) ReLU, softplus and their derivatives")
        b.set_ylim(-0.3, 6.2)

        c.plot(z, np.tanh(z), color=FUNCTION_COLOR, lw=2, label="tanh(z)")
        c.plot(
            z,
            1 - np.tanh(z) ** 2,
            color=DERIVATIVE_COLOR,
            lw=2,
            ls="--",
            label="tanh′(z) = 1 − tanh²",
        )
        c.plot([0], [1], "o", color=DERIVATIVE_COLOR, ms=6, zorder=5)
        c.set_title("(c) tanh and its derivative (max 1 at z = 0)")
        c.set_ylim(-1.1, 1.25)

        # the saturated regions the diagnostics count, |z| > 2; label where no curve runs
        for ax, label_y in ((a, 0.45), (c, 0.28)):
            for lo, hi in ((-6, -2), (2, 6)):
                ax.axvspan(lo, hi, color="0.5", alpha=0.1, lw=0)
            ax.text(
                4,
                label_y,
                "saturated\n|z| > 2\n(shaded)",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="center",
                fontsize=7.5,
                color="0.35",
            )
        for ax in (a, b, c):
            ax.legend(loc="upper left", fontsize=8, frameon=True, framealpha=0.9)
        _derivative_panel(d, z)
        for ax in (a, b, c, d):
            ax.set_xlim(-6, 6)
            ax.axvline(0, color="0.6", lw=0.6)
            ax.set_xlabel("z (weighted input of a unit)")
        suptitle(fig, "The activation functions behind the chain rule, and their derivatives")
        save(fig, out)


# --------------------------------------------------------------------------- one_path


def plot_layer_panels(
    traces: pd.DataFrame, runs: pd.DataFrame, out: str | Path, experiment: str | None = None
) -> pd.DataFrame:
    """One panel per hidden layer (the article's four panels): the probe bias-gradient norm
    vs epoch, every run a line, all panels on one log y range so layer 1 < 2 < ... shows.

    Returns per run and layer the median, first and last norm over the epochs.
    """
    runs = _by_activation(runs, experiment)
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
    styles = ["-", "--", ":", "-."]

    with style():
        fig = Figure(figsize=(2.9 * depth + 0.8, 3.3), layout="constrained")
        axes = fig.subplots(1, depth, squeeze=False, sharey=True)[0]
        for layer, ax in enumerate(axes, start=1):
            side = {1: " (input side)", depth: " (output side)"}.get(layer, "") if depth > 1 else ""
            ax.set_title(f"hidden layer {layer}{side}")
            rows = tr[tr["layer"] == layer]
            if rows.empty:
                empty_note(ax, "no finite gradients")
                continue
            for k, (_, d) in enumerate(rows.groupby("run_id", sort=False)):
                ax.plot(
                    d["epoch"],
                    d["grad_norm"],
                    color=colors[layer - 1],
                    ls=styles[k % len(styles)],
                    lw=1.6,
                    marker="o" if max_epoch <= 30 else None,
                    ms=3,
                )
            med = float(rows["grad_norm"].median())
            ax.axhline(med, color="0.4", lw=0.8, ls=":")
            ax.set_title(f"hidden layer {layer}{side}\nmedian over epochs {_sci(med)} (dotted)")
            ax.set_yscale("log")
            if limits is not None:
                ax.set_ylim(*limits)
            _x_axis(ax, "probe", max_epoch)
            ax.set_xlabel("epoch")
        axes[0].set_ylabel(PROBE_YLABEL)
        title = _title("Bias gradient of each hidden layer", experiment, runs)
        if np.isfinite(ordered) and depth > 1:
            order = " < ".join(str(i) for i in range(1, depth + 1))
            title += f"\nlayer {order} holds in {100 * ordered:.0f} % of epochs"
        if len(runs) > 1:
            title += f" · {len(runs)} runs, one line style each"
        suptitle(fig, title)
        save(fig, out)
    return summary


# --------------------------------------------------------------------------- speed of learning


def _speed_summary(data: pd.DataFrame, x: str) -> dict[str, float]:
    """Median over x of each layer's norm, and of the last ÷ first hidden layer ratio."""
    wide = data.pivot_table(index=x, columns="layer", values="grad_norm")
    out = {f"median_layer{int(c)}": float(wide[c].median()) for c in sorted(wide.columns)}
    if wide.shape[1] > 1:
        ratio = (wide.iloc[:, -1] / wide.iloc[:, 0]).replace([np.inf, -np.inf], np.nan)
        out["median_ratio"] = float(ratio.median())
    return out


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
    runs = _by_activation(runs, experiment)
    x = "step" if source == "step" else "epoch"
    tr = D.hidden_bias(traces, runs, source)
    diverged_at = D.divergence_points(tr, runs, x)
    traced = runs[D.isin(runs["run_id"], tr["run_id"])]
    configs = traced.drop_duplicates("config_id")
    tr = D.finite_positive(tr, "grad_norm").sort_values(["run_id", "layer", x])
    windows: set[int] = set()
    parts = []
    for _, d in tr.groupby(["run_id", "layer"], sort=False):
        d, window = smooth_steps(d) if source == "step" else (d, 1)
        windows.add(window)
        parts.append(d)
    smooth = pd.concat(parts) if parts else tr
    bands = D.seed_band(smooth, ["config_id", "layer", x]) if len(smooth) else None
    depth = int(traced["depth"].max()) if len(traced) else 1
    colors = layer_colors(depth)
    ok_ids = traced.loc[traced["status"] != "diverged", "run_id"]
    shown = smooth.loc[D.isin(smooth["run_id"], ok_ids), "grad_norm"]
    refs = {r["config_id"]: published(r, reference) for _, r in configs.iterrows()}
    ref_values = pd.Series([v for vals in refs.values() if vals for v in vals], dtype=float)
    limits = decade_limits(pd.concat([shown, ref_values]))
    max_x = float(tr[x].max()) if len(tr) else 1.0
    rows = []

    with style():
        n = max(1, len(configs))
        ncols = min(3, n)
        nrows = math.ceil(n / ncols)
        legend_w = 2.8 if ncols == 1 else 0.0  # a single panel gets its legend on the right
        fig = Figure(
            figsize=(4.3 * ncols + 1.0 + legend_w, 3.1 * nrows + 1.5), layout="constrained"
        )
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=False).ravel().tolist()
        for ax in axes[n:]:
            ax.set_visible(False)
        if configs.empty:
            empty_note(axes[0], f"no {source} traces for experiment {experiment!r}")
        for ax, (_, cfg) in zip(axes, configs.iterrows(), strict=False):
            members = traced[traced["config_id"] == cfg["config_id"]]
            n_div = int((members["status"] == "diverged").sum())
            title = (
                f"{cfg['activation']} · {cfg['init']}\n{F.widths_label(cfg['widths'])} units"
                f" · n = {len(members)} seed{'s' if len(members) != 1 else ''}"
            )
            if n_div:
                title += f" · {n_div} diverged"
            ax.set_title(title, color=DIVERGED_COLOR if n_div else "black")
            data = bands[bands["config_id"] == cfg["config_id"]] if bands is not None else None
            raw = tr[tr["config_id"] == cfg["config_id"]]
            if data is None or data.empty:
                empty_note(ax, "no finite gradients")
                continue
            for layer, d in data.groupby("layer"):
                color = colors[int(layer) - 1]
                ax.plot(d[x], d["gmean"], color=color, lw=1.4)
                if (d["n"] > 1).any():
                    ax.fill_between(d[x], d["lo"], d["hi"], color=color, alpha=BAND_ALPHA, lw=0)
            for layer, value in enumerate(refs.get(cfg["config_id"]) or [], start=1):
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
            summary = _speed_summary(raw, x)
            rows.append(
                {"config_id": cfg["config_id"], "activation": cfg["activation"],
                 "n_seeds": len(members), **summary}
            )  # fmt: skip
            if "median_ratio" in summary and np.isfinite(summary["median_ratio"]):
                over = "iterations" if x == "step" else "epochs"
                ax.set_title(
                    f"{ax.get_title()}\nlayer {int(cfg['depth'])} ÷ layer 1: "
                    f"×{_sci(summary['median_ratio'])} (median, {over})",
                    color=ax.title.get_color(),
                )
            ax.set_yscale("log")
            own = limits if not n_div else decade_limits(data["gmean"])
            if own is not None:
                ax.set_ylim(*own)
            _x_axis(ax, source, max_x)
            for run_id in members["run_id"]:
                mark_divergence(ax, diverged_at.get(run_id))
        xlabel = (
            "iteration (one mini-batch update each)"
            if source == "step"
            else "epoch (0 = at initialisation)"
        )
        for ax in axes[-ncols:]:
            ax.set_xlabel(xlabel)
        fig.supylabel(STEP_YLABEL if source == "step" else PROBE_YLABEL)
        title = _title("Speed of learning per hidden layer", experiment, traced)
        title += "\n(line: geometric mean over seeds, band: min–max"
        if max(windows, default=1) > 1:
            title += f"; each seed a rolling median over {max(windows)} iterations"
        title += ")"
        suptitle(fig, title)
        handles = [Line2D([], [], color=c, lw=2) for c in colors]
        names = [f"hidden layer {i}" for i in range(1, depth + 1)]
        names[0] += " (input side)"
        if depth > 1:
            names[-1] += " (output side)"
        if any(refs.values()):
            handles.append(
                Line2D([], [], ls="", marker="D", mfc="white", mec=REFERENCE_COLOR, mew=1.2)
            )
            names.append(f"published, at initialisation:\n{_source(reference, 60)}")
        if ncols == 1:  # one panel: a legend row would be wider than the figure
            fig.legend(handles, names, loc="outside right center", frameon=False, fontsize=9)
        else:
            fig.legend(
                handles, names, loc="outside lower center", ncol=min(len(names), 3), frameon=False
            )
        save(fig, out)
    result = pd.DataFrame(rows)
    ratio_last = [c for c in result.columns if c != "median_ratio"] + ["median_ratio"]
    return result[ratio_last] if "median_ratio" in result else result


# --------------------------------------------------------------------------- nielsen_init


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
    runs = _by_activation(runs, experiment)
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
    runs = _by_activation(runs, experiment)
    tr = D.hidden_bias(traces, runs, "probe")
    seeds = D.finite_positive(tr[tr["epoch"] == 0], "grad_norm")
    seeds = seeds.merge(runs[["run_id", "widths", "activation", "init"]], on="run_id")
    group_keys = ["widths", "activation", "init"]
    groups = list(table.groupby(group_keys, sort=False).groups)
    vary = [k for k in ("activation", "init") if table[k].nunique() > 1]
    depth = int(table["depth"].max()) if len(table) else 1
    colors = layer_colors(depth)
    bar_w = 0.8 / depth
    values = pd.concat([table["measured"], table["reference"].dropna(), seeds["grad_norm"]])
    limits = decade_limits(values)

    with style():
        fig = Figure(figsize=(max(6.0, 0.95 * len(table) + 3.2), 4.6), layout="constrained")
        ax = fig.subplots()
        if table.empty:
            empty_note(ax, f"no probe gradients at initialisation for {experiment!r}")
        for g, key in enumerate(groups):
            sub = table[(table[group_keys] == pd.Series(key, index=group_keys)).all(axis=1)]
            n = len(sub)
            for _, row in sub.iterrows():
                layer = int(row["layer"])
                x = g + (layer - 1 - (n - 1) / 2) * bar_w
                ax.bar(x, row["measured"], width=bar_w * 0.92, color=colors[layer - 1], zorder=2)
                pts = seeds[
                    (seeds[group_keys] == pd.Series(key, index=group_keys)).all(axis=1)
                    & (seeds["layer"] == layer)
                ]
                if len(pts) > 1:
                    ax.plot([x] * len(pts), pts["grad_norm"], "o", color="0.2", ms=2.5, zorder=4)
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
                label = _sci(row["measured"])
                if np.isfinite(row["reference"]):
                    label += f"\n({_sci(row['reference'])})"
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
        ax.set_yscale("log")
        if limits is not None:
            ax.set_ylim(limits[0], limits[1] * 3)  # headroom for the value labels
        labels = []
        for key in groups:
            text = F.widths_label(key[0]) + " units"
            extra = " · ".join(str(dict(zip(group_keys, key, strict=True))[k]) for k in vary)
            labels.append(f"{text}\n{extra}" if extra else text)
        ax.set_xticks(range(len(groups)), labels)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("network (hidden layers × units)")
        ax.set_ylabel("‖∂C/∂b‖ at initialisation,\nprobe set (log)")
        handles = [Line2D([], [], color=c, lw=6) for c in colors]
        names = [f"hidden layer {i}" for i in range(1, depth + 1)]
        if table["reference"].notna().any():
            handles.append(Line2D([], [], color=REFERENCE_COLOR, lw=1.8, marker="D", ms=4))
            names.append(f"published:\n{_source(reference)}")
        if (table["n_runs"] > 1).any():
            handles.append(Line2D([], [], ls="", marker="o", color="0.2", ms=3))
            names.append("one seed (bar: median)")
        fig.legend(handles, names, loc="outside right center", frameon=False, fontsize=8)
        title = _title("Gradient norms at initialisation, per hidden layer", experiment, runs)
        title += "\nlabels: measured (published)"
        suptitle(fig, title)
        save(fig, out)
    return table
