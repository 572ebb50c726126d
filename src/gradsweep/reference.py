"""Verdicts from the gradient ratio, and published numbers beside the measured ones.

The verdict of a run looks at r = ‖∂C/∂b‖ of the last hidden layer ÷ that of the first, on
the probe set, at initialisation (epoch 0) and after every epoch. Each value is classed:

- ``vanishing``: r > 10 — the first layer learns over ten times slower than the last;
- ``exploding``: r < 1/10 — the first layer's gradient is over ten times the last's;
- ``healthy``: 1/10 ≤ r ≤ 10 (a single hidden layer has r = 1);
- ``diverged`` (whole run): the loss, a gradient or a weight became NaN or infinite.

The run's *escape epoch* is the first epoch from which r stays inside [1/10, 10] to the end
(:func:`gradsweep.stats.escape_epoch`). The verdict states both phases, e.g.
``vanishing until epoch 5 → healthy`` (r > 10 at initialisation, inside the band from epoch 5
on), ``healthy`` (inside the band throughout), ``vanishing throughout`` or
``healthy → vanishing from epoch 7``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from gradsweep.stats import NEVER_LEARNED_BELOW

VANISHING_RATIO = 10.0
EXPLODING_RATIO = 0.1

# metric → (column header, runs.parquet field or how to compute the measured value)
METRICS = {
    "best_val_acc": "best val acc (%)",
    "test_acc": "test acc (%)",
    "test_error": "test error (%)",
    "probe_bias_norms_init": "‖∂C/∂b‖ per hidden layer at init",
    "bias_order": "layers in order (epochs)",
    "grad_ratio": "verdict",
    "dead_frac": "dead units at end (%)",
    # claims checked across an experiment's configs (claim_section), not per config
    "bn_speed": "batch norm: accuracy sooner, stable inputs",
    "remedies": "remedies vs plain SGD",
}
CLAIM_METRICS = ("bn_speed", "remedies")


def verdict(status: str, ratio: float) -> str:
    if status == "diverged":
        return "diverged"
    if ratio is None or not np.isfinite(ratio):
        # a first layer with zero gradient (all dead) is the extreme of vanishing
        return "vanishing" if ratio == math.inf else "unknown"
    if ratio > VANISHING_RATIO:
        return "vanishing"
    if ratio < EXPLODING_RATIO:
        return "exploding"
    return "healthy"


def dynamic_verdict(status: str, ratios: pd.Series, escape: float) -> str:
    """Verdict at initialisation and over training (module docstring) from the ratio per
    epoch (index = epoch, 0 = initialisation) and the run's escape epoch."""
    if status == "diverged":
        return "diverged"
    r = pd.to_numeric(ratios, errors="coerce").sort_index()
    if r.empty:
        return "unknown"
    classes = [verdict("ok", float(x)) for x in r]
    first, last = classes[0], classes[-1]
    if np.isfinite(escape):
        if escape <= r.index[0]:
            return "healthy"
        if first != "healthy":
            return f"{first} until epoch {int(escape)} → healthy"
        before = classes[list(r.index).index(escape) - 1]
        return f"healthy → {before} → healthy from epoch {int(escape)}"
    if all(c == first for c in classes):
        return f"{first} throughout"
    since = len(classes) - 1
    while since > 0 and classes[since - 1] == last:
        since -= 1
    return f"{first} → {last} from epoch {int(r.index[since])}"


def matches(row: pd.Series, entry: dict[str, Any]) -> bool:
    return all(str(row.get(k)) == str(v) for k, v in entry.items() if k != "value")


def _num(x: float, digits: int = 2) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _norms(values: list[float]) -> str:
    return " / ".join(f"{v:.3g}" for v in values) if len(values) else "—"


def compare(row: pd.Series, metric: str, ref: Any) -> tuple[str, str, str]:
    """(measured, reference, Δ) as table cells for one run."""
    if metric in ("best_val_acc", "test_acc", "test_error"):
        key = "test_acc" if metric == "test_error" else metric
        measured = 100 * float(row.get(key, np.nan))
        if metric == "test_error":
            measured = 100 - measured
        if ref is None:
            return _num(measured), "—", "—"
        return _num(measured), _num(float(ref)), f"{measured - float(ref):+.2f}"
    if metric == "probe_bias_norms_init":
        measured = list(row.get("probe_bias_norms_init", []))
        if ref is None:
            return _norms(measured), "—", "—"
        ratios = [m / r for m, r in zip(measured, ref, strict=False)]
        return _norms(measured), _norms(ref), " ".join(f"×{q:.2f}" for q in ratios)
    if metric == "bias_order":
        frac = float(row.get("bias_order_frac", np.nan))
        return (
            f"{100 * frac:.0f} % of epochs" if np.isfinite(frac) else "—",
            "1 < 2 < 3 < 4",
            "holds" if frac == 1 else ("mostly" if frac >= 0.5 else "fails"),
        )
    if metric == "dead_frac":
        return _num(100 * float(row.get("dead_frac_final", np.nan)), 1), "—", "—"
    return str(row.get("verdict", "—")), "—", "—"


def annotate(runs: pd.DataFrame, references: dict[str, dict | None]) -> pd.DataFrame:
    """Add ``measured``, ``reference`` and ``delta`` cells per run from each experiment's
    ``reference:`` block of the config (metric, and values matched on widths/activation/init)."""
    runs = runs.copy()
    cells = []
    for _, row in runs.iterrows():
        block = references.get(row["experiment"]) or {}
        metric = block.get("metric")
        if metric is None:
            cells.append(("", "", ""))
            continue
        entry = next((e for e in block.get("values", []) if matches(row, e)), None)
        cells.append(compare(row, metric, entry["value"] if entry else None))
    runs["measured"], runs["reference"], runs["delta"] = (
        (list(c) for c in zip(*cells, strict=True)) if cells else ([], [], [])
    )
    return runs


# --------------------------------------------------------------------------- claims (issue 15)


def _labels(configs: pd.DataFrame) -> list[str]:
    from gradsweep.plotting.data import config_labels  # no matplotlib: the data layer only

    return config_labels(configs)


def _configs(runs: pd.DataFrame) -> pd.DataFrame:
    from gradsweep.plotting.data import configs_of

    return configs_of(runs)


def _gmean(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else np.nan


def _fmt_ratio(x: float) -> str:
    from gradsweep.table import format_ratio

    return format_ratio(x)


def mean_curve(metrics: pd.DataFrame, run_ids: pd.Series) -> pd.Series:
    """Mean over the runs of the test accuracy at each step (index: step)."""
    m = metrics[metrics["run_id"].isin(set(run_ids))]
    m = m.assign(acc=pd.to_numeric(m["test_acc"], errors="coerce")).dropna(subset=["acc"])
    return m.groupby("step")["acc"].mean().sort_index()


def steps_to_reach(curve: pd.Series, target: float) -> float:
    """The first step at which ``curve`` reaches ``target`` (NaN: never)."""
    hit = curve[curve >= target]
    return float(hit.index[0]) if len(hit) else np.nan


def bn_speed(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Ioffe & Szegedy's claim, per config: final mean test accuracy, the first step at which
    its seed-mean test accuracy reaches the final accuracy of the config without
    normalization (the baseline), and how far the last hidden layer's input percentiles moved
    (``z_drift``, mean over seeds). One row per config, the baseline first."""
    configs = _configs(runs)
    labels = dict(zip(configs["config_id"], _labels(configs), strict=True))
    base = (
        configs[configs["normalization"].astype(str) == "none"]
        if "normalization" in configs
        else configs.head(0)
    )
    target = np.nan
    if len(base) == 1:
        curve = mean_curve(
            metrics, runs.loc[runs["config_id"] == base["config_id"].iloc[0], "run_id"]
        )
        target = float(curve.iloc[-1]) if len(curve) else np.nan
        if target < NEVER_LEARNED_BELOW:  # never learned: "reaching" chance means nothing
            target = np.nan
    rows = []
    for _, cfg in configs.iterrows():
        members = runs[runs["config_id"] == cfg["config_id"]]
        curve = mean_curve(metrics, members["run_id"])
        drift = pd.to_numeric(members.get("z_drift", pd.Series(dtype=float)), errors="coerce")
        rows.append({
            "config_id": cfg["config_id"],
            "label": labels[cfg["config_id"]],
            "normalization": str(cfg.get("normalization", "none")),
            "n": len(members),
            "final_test_acc": float(curve.iloc[-1]) if len(curve) else np.nan,
            "last_step": float(curve.index[-1]) if len(curve) else np.nan,
            # the first trained epoch: where "sooner" shows first
            "early_step": float(early.index[0]) if len(early := curve[curve.index > 0]) else np.nan,
            "early_test_acc": float(early.iloc[0]) if len(early) else np.nan,
            "target": target,
            "steps_to_target": steps_to_reach(curve, target) if np.isfinite(target) else np.nan,
            "z_drift": float(drift.mean()) if drift.notna().any() else np.nan,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("normalization", key=lambda s: s != "none", kind="stable")
    return table.reset_index(drop=True)


def bn_speed_verdict(table: pd.DataFrame) -> list[str]:
    """Two sentences: does batch norm reach the baseline's accuracy sooner and end higher;
    do the input percentiles drift less with it."""
    base = table[table["normalization"] == "none"]
    others = table[table["normalization"] != "none"]
    if len(base) != 1 or others.empty:
        return ["No verdict: the experiment needs one config without normalization and one with."]
    b = base.iloc[0]
    lines = []
    for _, o in others.iterrows():
        if b["final_test_acc"] < NEVER_LEARNED_BELOW:  # the baseline's final is ~chance
            holds = "holds" if o["final_test_acc"] >= NEVER_LEARNED_BELOW else "does not hold"
            lines.append(
                f"- **Higher accuracy sooner: {holds}** for {o['label']}: without "
                f"normalization the net never learned (final {100 * b['final_test_acc']:.2f} %, "
                f"below twice chance); with it it ends at {100 * o['final_test_acc']:.2f} %."
            )
            lines += _stability(o, b)
            continue
        reaches = np.isfinite(o["steps_to_target"])
        sooner = reaches and o["steps_to_target"] < b["steps_to_target"]
        early = o["early_test_acc"] > b["early_test_acc"]
        higher = o["final_test_acc"] > b["final_test_acc"]
        speed = (
            f"×{b['steps_to_target'] / o['steps_to_target']:.1f} sooner"
            if sooner and o["steps_to_target"] > 0
            else "not sooner"
        )
        reach = (
            f"it reaches the baseline's final {100 * b['final_test_acc']:.2f} % at step "
            f"{_step(o['steps_to_target'])} (the baseline at step "
            f"{_step(b['steps_to_target'])}; {speed})"
            if reaches
            else f"it never reaches the baseline's final {100 * b['final_test_acc']:.2f} % "
            f"(the baseline does at step {_step(b['steps_to_target'])})"
        )
        holds = (
            "holds"
            if (early or sooner) and higher
            else ("partly holds" if early or sooner or higher else "does not hold")
        )
        gain = 100 * (o["final_test_acc"] - b["final_test_acc"])
        lines.append(
            f"- **Higher accuracy sooner: {holds}** for {o['label']}: after the first epoch "
            f"(step {_step(o['early_step'])}) it is at {100 * o['early_test_acc']:.2f} % vs "
            f"{100 * b['early_test_acc']:.2f} % without; {reach}; it ends at "
            f"{100 * o['final_test_acc']:.2f} % ({gain:+.2f} pp)."
        )
        lines += _stability(o, b)
    return lines


def _stability(o: pd.Series, b: pd.Series) -> list[str]:
    """Does the normalized config's input distribution drift less than the baseline's?"""
    if not (np.isfinite(o["z_drift"]) and np.isfinite(b["z_drift"])):
        return ["- Stable input distribution: no verdict (percentiles not recorded)."]
    stable = o["z_drift"] < b["z_drift"]
    return [
        f"- **Stable input distribution: {'holds' if stable else 'does not hold'}** for "
        f"{o['label']}: the 15th/50th/85th percentiles of the last hidden layer's unit-0 "
        f"input moved up to {o['z_drift']:.3g} over training (the largest max − min, mean "
        f"over seeds) vs {b['z_drift']:.3g} without."
    ]


def _step(x: float) -> str:
    return "never" if x is None or not np.isfinite(x) else f"{int(x):,}"


PLAIN = {"activation": "sigmoid", "optimizer": "sgd", "normalization": "none", "residual": False}


def remedies_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per config: gradient and update ratios (geometric mean over seeds), test accuracy
    (mean) and, against the plain-SGD sigmoid cell (sgd, no normalization, no shortcut), the
    accuracy difference and the factor by which the ratios shrank."""
    configs = _configs(runs)
    rows = []
    for label, (_, cfg) in zip(_labels(configs), configs.iterrows(), strict=True):
        members = runs[runs["config_id"] == cfg["config_id"]]
        row = {"config_id": cfg["config_id"], "label": label, "n": len(members)}
        for col in (
            "grad_ratio_init",
            "grad_ratio_final",
            "update_ratio_init",
            "update_ratio_final",
        ):
            row[col] = _gmean(members[col]) if col in members else np.nan
        row["test_acc"] = float(pd.to_numeric(members["test_acc"], errors="coerce").mean())
        row["plain"] = all(str(cfg.get(k, v)) == str(v) for k, v in PLAIN.items())
        rows.append(row)
    table = pd.DataFrame(rows)
    plain = table[table["plain"]] if len(table) else table
    if len(plain) == 1:
        p = plain.iloc[0]
        table["delta_acc"] = table["test_acc"] - p["test_acc"]
        for col in ("grad_ratio_final", "update_ratio_init"):
            table[f"{col}_vs_plain"] = table[col] / p[col]
    return table


def _band(x: float) -> str:
    if not np.isfinite(x):
        return "—"
    return (
        "alike"
        if EXPLODING_RATIO <= x <= VANISHING_RATIO
        else ("first slower" if x > 1 else "first faster")
    )


def remedies_markdown(table: pd.DataFrame) -> list[str]:
    header = (
        "| config | n | grad ratio init | grad ratio end | update ratio epoch 1 | "
        "update ratio last epoch | first vs last layer steps (epoch 1) | test acc (%) | "
        "Δ acc vs plain SGD (pp) |"
    )
    lines = [header, "|:---|---:|---:|---:|---:|---:|:---|---:|---:|"]
    for _, r in table.iterrows():
        delta = r.get("delta_acc", np.nan)
        lines.append(
            f"| {r['label']}{' (plain SGD)' if r['plain'] else ''} | {r['n']} | "
            f"{_fmt_ratio(r['grad_ratio_init'])} | {_fmt_ratio(r['grad_ratio_final'])} | "
            f"{_fmt_ratio(r['update_ratio_init'])} | {_fmt_ratio(r['update_ratio_final'])} | "
            f"{_band(r['update_ratio_init'])} | {_num(100 * r['test_acc'])} | "
            f"{'—' if r['plain'] or not np.isfinite(delta) else f'{100 * delta:+.2f}'} |"
        )
    return lines


def remedies_verdict(table: pd.DataFrame) -> list[str]:
    if "delta_acc" not in table:
        return ["No verdict: the experiment needs exactly one plain-SGD sigmoid config."]
    others = table[~table["plain"]]
    better = others[others["delta_acc"] > 0]
    even = others[others["update_ratio_init"].between(EXPLODING_RATIO, VANISHING_RATIO)]
    best = others.loc[others["test_acc"].idxmax()] if len(others) else None
    text = (
        f"{len(better)} of {len(others)} configs beat plain SGD's test accuracy; in "
        f"{len(even)} of {len(others)} the first and last hidden layers take steps of similar "
        f"relative size in epoch 1 (update ratio within [{EXPLODING_RATIO:g}, "
        f"{VANISHING_RATIO:g}])."
    )
    if best is not None:
        acc, delta = 100 * best["test_acc"], 100 * best["delta_acc"]
        text += f" Best: {best['label']}, {acc:.2f} % ({delta:+.2f} pp)."
    return [text]


def claim_section(metric: str, runs: pd.DataFrame, metrics: pd.DataFrame | None) -> list[str]:
    """Markdown lines with the measured verdict of a claim metric (CLAIM_METRICS) over an
    experiment's configs."""
    if metric == "bn_speed":
        if metrics is None or metrics.empty:
            return ["Measured verdict: needs metrics.parquet (test accuracy per step)."]
        table = bn_speed(runs, metrics)
        lines = [
            "| config | n | test acc after epoch 1 (%) | final test acc (%) | step reaching "
            "the baseline's final acc | input percentiles moved up to (last hidden layer) |",
            "|:---|---:|---:|---:|---:|---:|",
        ]
        for _, r in table.iterrows():
            drift = "—" if not np.isfinite(r["z_drift"]) else f"{r['z_drift']:.3g}"
            reach = _step(r["steps_to_target"]) if np.isfinite(r["target"]) else "—"
            lines.append(
                f"| {r['label']} | {r['n']} | {_num(100 * r['early_test_acc'])} | "
                f"{_num(100 * r['final_test_acc'])} | "
                f"{reach} of {_step(r['last_step'])} | {drift} |"
            )
        return ["Measured verdict:", "", *lines, "", *bn_speed_verdict(table)]
    if metric == "remedies":
        table = remedies_cells(runs)
        return ["Measured verdict:", "", *remedies_markdown(table), "", *remedies_verdict(table)]
    return []
