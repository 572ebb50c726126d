"""The remedies of issue 15: the remedies heatmap (gradient ratio, update ratio and accuracy
per config, e.g. optimizer × normalization × residual) and Ioffe & Szegedy's Fig. 1 (test
accuracy over the steps with and without batch normalization, and the 15th/50th/85th
percentiles of a last-hidden-layer unit's input over the steps). Input columns:
docs/outputs.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from gradsweep import facets as F
from gradsweep.aggregate import drift, z_drift
from gradsweep.claims import remedies_cells
from gradsweep.formatting import format_ratio
from gradsweep.plotting import data as D
from gradsweep.plotting.data import MAX_PANELS
from gradsweep.plotting.style import (
    BAND_ALPHA,
    empty_note,
    heatmap_mesh,
    save,
    style,
    suptitle,
    thousands,
    with_datasets,
)

# --------------------------------------------------------------------------- remedies (issue 15)

# (runs.parquet column, column heading): ratios are last ÷ first hidden layer
REMEDY_RATIOS = [
    ("grad_ratio_init", "grad ratio\nat init"),
    ("grad_ratio_final", "grad ratio\nat end"),
    ("update_ratio_init", "update ratio\nepoch 1"),
    ("update_ratio_final", "update ratio\nlast epoch"),
]


def _ratio_cell(row: pd.Series, col: str) -> str:
    """A ratio's geometric mean and, over seeds that differ, their min–max."""
    text = format_ratio(row[col]) if pd.notna(row[col]) else "—"
    if row["n"] > 1 and pd.notna(row[col]) and row[f"{col}_min"] != row[f"{col}_max"]:
        text += f"\n{format_ratio(row[f'{col}_min'])}–{format_ratio(row[f'{col}_max'])}"
    return text


def _accuracy_cell(row: pd.Series) -> str:
    """The mean test accuracy, its min–max over seeds and how many never learned."""
    text = f"{row['test_acc']:.1f}" if pd.notna(row["test_acc"]) else "—"
    if row["n"] > 1 and pd.notna(row["test_acc"]):
        text += f"\n{row['test_acc_min']:.1f}–{row['test_acc_max']:.1f}"
    if row["n_never_learned"]:
        text += f"\n{row['n_never_learned']} of {row['n']} never learned"
    return text


def _label_cells(ax_ratio: Axes, ax_acc: Axes, table: pd.DataFrame, acc_min: float) -> None:
    """Every cell's numbers; white on the darker half of the accuracy colours."""
    for i, (_, row) in enumerate(table.iterrows()):
        for j, (col, _) in enumerate(REMEDY_RATIOS):
            ax_ratio.text(
                j + 0.5, i + 0.5, _ratio_cell(row, col), ha="center", va="center", fontsize=6.5
            )
        dark = pd.notna(row["test_acc"]) and row["test_acc"] > (acc_min + 100) / 2
        ax_acc.text(0.5, i + 0.5, _accuracy_cell(row), ha="center", va="center", fontsize=6.5,
                    color="white" if dark else "black")  # fmt: skip


def _heatmaps(
    ax_ratio: Axes, ax_acc: Axes, table: pd.DataFrame, logs: pd.DataFrame, vmax: float
) -> float:
    """log10 ratios in the ratio heatmap's colours, accuracy in greens from min(lowest, 90 %),
    a colour bar each, headings on top; returns that lower end."""
    lo = max(float(np.nanmin(table["test_acc"])) if table["test_acc"].notna().any() else 0, 0)
    acc_min = min(lo, 90.0)
    acc = table[["test_acc"]].rename(columns={"test_acc": "test acc (%)"})
    panels = [
        (ax_ratio, logs, sns.color_palette("vlag", as_cmap=True), -vmax, vmax,
         "log₁₀(ratio last ÷ first)\n> 0: first layer slower"),
        (ax_acc, acc, "Greens", acc_min, 100.0, "test accuracy (%)"),
    ]  # fmt: skip
    for ax, cells, cmap, lower, upper, label in panels:
        mesh = heatmap_mesh(ax, cells.to_numpy(dtype=float), cmap, lower, upper)
        ax.figure.colorbar(mesh, ax=ax, label=label).outline.set_linewidth(0)
        ax.set_xticks(np.arange(cells.shape[1]) + 0.5, cells.columns)
        ax.grid(False)
        ax.tick_params(axis="x", labelrotation=0, labelsize=7)
        ax.tick_params(axis="y", labelrotation=0, labelsize=7)
        ax.xaxis.tick_top()
    return acc_min


def plot_remedies_heatmap(
    runs: pd.DataFrame, out: str | Path, experiment: str | None = None
) -> pd.DataFrame:
    """The remedies side by side, one row per config (e.g. optimizer × normalization ×
    residual, plus a ReLU baseline): log10 of the gradient ratio at initialisation and at the
    end, and of the update ratio (relative kernel update, last ÷ first hidden layer) in epoch
    1 and in the last epoch, in the ratio heatmap's colours; then the test accuracy.

    Cells: geometric mean (accuracy: mean) over seeds and, with several seeds, min–max.
    Returns gradsweep.claims.remedies_cells, one row per config."""
    with style():
        fig, table = _remedies_figure(runs, experiment)
        save(fig, out)
    return table


def _remedies_figure(runs: pd.DataFrame, experiment: str | None) -> tuple[Figure, pd.DataFrame]:
    """plot_remedies_heatmap's figure (drawn inside style(), not saved) and table."""
    if experiment is not None and "experiment" in runs:
        runs = runs[runs["experiment"] == experiment]
    table = remedies_cells(runs) if len(runs) else pd.DataFrame()
    n = max(len(table), 1)
    logs = pd.DataFrame(
        {h: np.log10(table[c].where(table[c] > 0)) for c, h in REMEDY_RATIOS} if len(table) else {}
    )
    finite_logs = logs.stack().dropna() if len(logs) else pd.Series(dtype=float)
    vmax = max(float(finite_logs.abs().max()) if len(finite_logs) else 1.0, 0.5)
    label_w = max((len(str(x)) for x in table.get("label", [])), default=10) * 0.065
    fig = Figure(
        figsize=(label_w + 1.3 * len(REMEDY_RATIOS) + 1.4 + 2.2, 0.55 * n + 2.2),
        layout="constrained",
    )
    ax_ratio, ax_acc = fig.subplots(
        1, 2, width_ratios=[len(REMEDY_RATIOS), 1.1], sharey=True, squeeze=True
    )
    if table.empty:
        empty_note(ax_ratio, "no runs")
        ax_acc.set_visible(False)
        return fig, table
    acc_min = _heatmaps(ax_ratio, ax_acc, table, logs, vmax)
    _label_cells(ax_ratio, ax_acc, table, acc_min)
    ax_ratio.set_yticks(
        np.arange(len(table)) + 0.5,
        [f"{lbl} (n = {k})" for lbl, k in zip(table["label"], table["n"], strict=True)],
        va="center",
    )
    suptitle(
        fig,
        with_datasets(f"Remedies side by side — {experiment or 'all runs'}", runs)
        + "\nratios last ÷ first hidden layer: geometric mean over seeds (second line: "
        "min–max); accuracy: mean (min–max)",
    )
    return fig, table


# --------------------------------------------------------------------------- Ioffe & Szegedy Fig. 1

PERCENTILES = [("z_p15", "15th"), ("z_p50", "50th"), ("z_p85", "85th")]
PERCENTILE_STYLES = {"z_p15": (0, (3, 2)), "z_p50": "-", "z_p85": (0, (1, 1.5))}
BN_COLUMNS = ("run_id", "epoch", "step", "layer", "param", "source", "z_p15", "z_p50", "z_p85")


def percentile_table(traces: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The last hidden layer's percentiles of its unit-0 input (z_p15/50/85), one row per run
    and probe epoch (with its step), where recorded."""
    cols = [c for c, _ in PERCENTILES]
    if not set(cols) <= set(traces.columns):
        return pd.DataFrame(columns=["run_id", "config_id", "epoch", "step", *cols])
    keep = [c for c in ("run_id", "config_id", "seed", "depth") if c in runs]
    tr = traces[(traces["source"] == "probe") & traces["z_p50"].notna()]
    tr = tr[D.isin(tr["run_id"], runs["run_id"])].merge(runs[keep], on="run_id")
    tr = tr[tr["layer"] == tr["depth"]]
    return tr.drop_duplicates(["run_id", "epoch"]).sort_values(["run_id", "step"])


def _bn_configs(runs: pd.DataFrame) -> tuple[pd.DataFrame, str, dict, dict]:
    """The configs drawn (at most MAX_PANELS − 1 beside the accuracy panel), a note if some
    are left out, and per config_id its label and colour."""
    configs = F.configs_of(runs) if len(runs) else pd.DataFrame(columns=["config_id"])
    note = ""
    if len(configs) > MAX_PANELS - 1:
        note = f"first {MAX_PANELS - 1} of {len(configs)} configs"
        configs = configs.head(MAX_PANELS - 1)
    labels = (
        dict(zip(configs["config_id"], F.config_labels(configs), strict=True))
        if len(configs)
        else {}
    )
    palette = dict(
        zip(
            configs["config_id"],
            sns.color_palette("colorblind", max(len(configs), 1)),
            strict=False,
        )
    )
    return configs, note, labels, palette


def _test_accuracy(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The runs' metrics rows with their config_id and a finite test accuracy ``acc`` in %."""
    met = metrics[D.isin(metrics["run_id"], runs["run_id"])].merge(
        runs[["run_id", "config_id"]], on="run_id"
    )
    met = met.assign(acc=pd.to_numeric(met["test_acc"], errors="coerce") * 100)
    return met.dropna(subset=["acc"])


def _mean_band(ax: Axes, per_step: pd.DataFrame, color: object, band: float, **line: Any) -> None:
    """A mean line over the seeds (columns step, mean, min, max) and, if ``band``, its
    min–max band at that alpha."""
    ax.plot(per_step["step"], per_step["mean"], color=color, **line)
    if band:
        ax.fill_between(
            per_step["step"], per_step["min"], per_step["max"], color=color, alpha=band, lw=0
        )


def _percentile_panel(ax: Axes, p: pd.DataFrame, color: object, several: bool) -> None:
    """One config's 15th, 50th and 85th percentile of z vs step, each in its line style."""
    if p.empty:
        empty_note(ax, "no percentiles recorded")
    for col, _ in PERCENTILES:
        per_step = p.groupby("step")[col].agg(["mean", "min", "max"]).reset_index()
        if len(per_step):
            band = BAND_ALPHA * 0.8 if several else 0
            _mean_band(ax, per_step, color, band, lw=1.4, ls=PERCENTILE_STYLES[col])


def _bn_row(cid: str, label: str, n: int, m: pd.DataFrame, p: pd.DataFrame) -> dict[str, Any]:
    """One config's row of plot_bn_distribution's table (``m``: its accuracy rows, ``p``: its
    percentile rows)."""
    last = m[m["step"] == m["step"].max()]["acc"] if len(m) else pd.Series(dtype=float)
    row = {"config_id": cid, "label": label, "n": n,
           "final_test_acc": float(last.mean()) if len(last) else np.nan}  # fmt: skip
    for col, _ in PERCENTILES:
        first = p[p["step"] == p["step"].min()][col] if len(p) else pd.Series(dtype=float)
        end = p[p["step"] == p["step"].max()][col] if len(p) else pd.Series(dtype=float)
        row[f"{col}_first"] = float(first.mean()) if len(first) else np.nan
        row[f"{col}_last"] = float(end.mean()) if len(end) else np.nan
        drifts = [drift(d[col]) for _, d in p.groupby("run_id")]
        row[f"{col}_drift"] = float(np.nanmean(drifts)) if drifts else np.nan
    # per seed the largest drift of the three percentiles, then the mean over seeds
    per_run = [z_drift(d, int(d["depth"].iloc[0])) for _, d in p.groupby("run_id")]
    row["z_drift"] = float(np.nanmean(per_run)) if per_run else np.nan
    return row


def _bn_legend(fig: Figure, labels: dict, palette: dict) -> None:
    """The configs' colours, the percentiles' line styles and the band, below the panels."""
    handles = [Line2D([], [], color=palette[c], lw=2) for c in labels]
    names = list(labels.values())
    handles += [Line2D([], [], color="0.3", ls=PERCENTILE_STYLES[c]) for c, _ in PERCENTILES]
    names += [f"{name} percentile" for _, name in PERCENTILES]
    handles.append(Patch(color="0.6", alpha=0.5))
    names.append("min–max over seeds")
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 4), frameon=False)


def _bn_title(runs: pd.DataFrame, experiment: str | None, note: str) -> str:
    return (
        with_datasets(
            "Batch normalization after Ioffe & Szegedy (2015), Fig. 1 — "
            f"{experiment or 'all runs'}",
            runs,
        )
        + "\n(line: mean over seeds, band: min–max"
        + (f"; {note}" if note else "")
        + ")"
    )


def plot_bn_distribution(
    metrics: pd.DataFrame,
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    out: str | Path,
    experiment: str | None = None,
) -> pd.DataFrame:
    """After Ioffe & Szegedy (2015), Fig. 1: (a) test accuracy vs training step, one line per
    config (e.g. with and without batch normalization; mean over seeds, band min–max);
    then one panel per config with the 15th, 50th and 85th percentile over the probe images
    of the input z of the last hidden layer's unit 0 vs step (mean over seeds, band
    min–max; with batch norm the normalised input), on a shared y axis so drift compares.

    Returns one row per config: label, n, final test accuracy (mean, %), per percentile its
    value at the first and the last probe and its drift (mean over seeds of each seed's
    max − min over training), and ``z_drift``: per seed the largest of the three, mean over
    seeds (runs.parquet's ``z_drift``)."""
    if experiment is not None and "experiment" in runs:
        runs = runs[runs["experiment"] == experiment]
    configs, note, labels, palette = _bn_configs(runs)
    met = _test_accuracy(metrics, runs)
    pct = percentile_table(traces, runs)
    finite_z = pct[[c for c, _ in PERCENTILES]].stack() if len(pct) else pd.Series(dtype=float)
    zlim = (float(finite_z.min()), float(finite_z.max())) if len(finite_z) else None
    rows = []
    n = 1 + len(configs)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    with style():
        fig = Figure(figsize=(3.9 * ncols + 0.6, 3.0 * nrows + 1.6), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
        for ax in axes[n:]:
            ax.set_visible(False)
        ax_acc, panels = axes[0], axes[1:n]
        ax_acc.set_title("(a) test accuracy")
        if met.empty:
            empty_note(ax_acc, "no accuracies")
        for k, (ax, cid) in enumerate(zip(panels, configs["config_id"], strict=True)):
            members = runs[runs["config_id"] == cid]
            m = met[met["config_id"] == cid]
            g = m.groupby("step")["acc"].agg(["mean", "min", "max"]).reset_index()
            if len(g):
                band = BAND_ALPHA if len(members) > 1 else 0
                _mean_band(ax_acc, g, palette[cid], band, lw=1.5, label=labels[cid])
            p = pct[pct["config_id"] == cid]
            letter = chr(ord("b") + k)
            ax.set_title(
                f"({letter}) {labels[cid]} · n = {len(members)}\nlast hidden layer, unit 0"
            )
            _percentile_panel(ax, p, palette[cid], len(members) > 1)
            row = _bn_row(cid, labels[cid], len(members), m, p)
            if np.isfinite(row["z_drift"]):
                ax.set_title(ax.get_title() + f" · moved up to {row['z_drift']:.2f}")
            if zlim is not None:
                pad = 0.05 * (zlim[1] - zlim[0] or 1.0)
                ax.set_ylim(zlim[0] - pad, zlim[1] + pad)
            ax.set_ylabel("input z of the sigmoid")
            rows.append(row)
        ax_acc.set_ylabel("test accuracy (%)")
        if len(met):
            lo = float(met.groupby(["config_id", "step"])["acc"].mean().quantile(0.02))
            ax_acc.set_ylim(max(0.0, min(lo, 90.0) - 1), 100)
        for ax in axes[:n]:
            ax.set_xlabel("training step")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.xaxis.set_major_formatter(FuncFormatter(thousands))
            ax.tick_params(labelsize=7)
        suptitle(fig, _bn_title(runs, experiment, note))
        _bn_legend(fig, labels, palette)
        save(fig, out)
    return pd.DataFrame(rows)
