"""The measured verdict of a claim checked across an experiment's configs, in words: the
Markdown below the experiment's table in results.md (the numbers: gradsweep.claims)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradsweep.claims import bn_speed, remedies_cells, update_band
from gradsweep.formatting import MISSING, fixed, format_ratio, step_text
from gradsweep.verdicts import EXPLODING_RATIO, NEVER_LEARNED_BELOW, VANISHING_RATIO


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
            f"{step_text(o['steps_to_target'])} (the baseline at step "
            f"{step_text(b['steps_to_target'])}; {speed})"
            if reaches
            else f"it never reaches the baseline's final {100 * b['final_test_acc']:.2f} % "
            f"(the baseline does at step {step_text(b['steps_to_target'])})"
        )
        holds = (
            "holds"
            if (early or sooner) and higher
            else ("partly holds" if early or sooner or higher else "does not hold")
        )
        gain = 100 * (o["final_test_acc"] - b["final_test_acc"])
        lines.append(
            f"- **Higher accuracy sooner: {holds}** for {o['label']}: after the first epoch "
            f"(step {step_text(o['early_step'])}) it is at {100 * o['early_test_acc']:.2f} % vs "
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
            f"{format_ratio(r['grad_ratio_init'])} | {format_ratio(r['grad_ratio_final'])} | "
            f"{format_ratio(r['update_ratio_init'])} | {format_ratio(r['update_ratio_final'])} | "
            f"{update_band(r['update_ratio_init'])} | {fixed(r['test_acc'])} | "
            f"{MISSING if r['plain'] or not np.isfinite(delta) else f'{delta:+.2f}'} |"
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
        acc, delta = best["test_acc"], best["delta_acc"]
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
            reach = step_text(r["steps_to_target"]) if np.isfinite(r["target"]) else "—"
            lines.append(
                f"| {r['label']} | {r['n']} | {fixed(100 * r['early_test_acc'])} | "
                f"{fixed(100 * r['final_test_acc'])} | "
                f"{reach} of {step_text(r['last_step'])} | {drift} |"
            )
        return ["Measured verdict:", "", *lines, "", *bn_speed_verdict(table)]
    if metric == "remedies":
        table = remedies_cells(runs)
        return ["Measured verdict:", "", *remedies_markdown(table), "", *remedies_verdict(table)]
    return []
