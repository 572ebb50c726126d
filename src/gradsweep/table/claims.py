"""The measured verdict of a claim checked across an experiment's configs, in words: the
Markdown below the experiment's table in results.md (the numbers: gradsweep.claims)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradsweep.claims import (
    bn_speed,
    isometry_cells,
    isometry_pairs,
    remedies_cells,
    trainable_cells,
    trainable_counts,
    update_band,
)
from gradsweep.formatting import MISSING, fixed, format_ratio, step_text
from gradsweep.verdicts import (
    CHANCE,
    EXPLODING_RATIO,
    ISOMETRY_TARGET,
    NEVER_LEARNED_BELOW,
    TRAINABLE_HOLDS,
    TRAINABLE_PARTLY,
    TRAINED_AT,
    VANISHING_RATIO,
)


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
    if metric in ("trainable_depth", "isometry_speed"):
        if metrics is None or metrics.empty:
            return ["Measured verdict: needs metrics.parquet (training accuracy per epoch)."]
        if metric == "trainable_depth":
            return ["Measured verdict:", "", *trainable_markdown(trainable_cells(runs, metrics))]
        return ["Measured verdict:", "", *isometry_markdown(isometry_cells(runs, metrics))]
    if metric == "remedies":
        table = remedies_cells(runs)
        return ["Measured verdict:", "", *remedies_markdown(table), "", *remedies_verdict(table)]
    return []


def _depth_scale(xi: float) -> str:
    return "∞" if not np.isfinite(xi) else f"{xi:.3g}"


def trainable_markdown(table: pd.DataFrame) -> list[str]:
    """Schoenholz et al.'s claim: the 2 × 2 count of configs (trained or not × inside or outside
    L ≤ 6 ξ_c), a verdict from it, and every config on the wrong side."""
    if table.empty:
        return ["No verdict: no config has a mean-field σ_w² and σ_b²."]
    counts = trainable_counts(table)
    lines = [
        f"*Trained*: the mean over seeds of the best training-set accuracy after any epoch is at "
        f"least {100 * TRAINED_AT:.0f} % ({TRAINED_AT / CHANCE:g}× chance); *inside*: the depth L "
        "(hidden layers) is at most 6 ξ_c, ξ_c the correlation depth scale of the mean-field "
        "theory at the config's σ_w², σ_b² (docs/meanfield.md; infinite at χ₁ = 1).",
        "",
        "| | trained | did not train |",
        "|:---|---:|---:|",
        *(f"| {idx} | {r['trained']} | {r['did not train']} |" for idx, r in counts.iterrows()),
        "",
    ]
    wrong = table[~table["agrees"]]
    agree = len(table) - len(wrong)
    share = agree / len(table)
    holds = (
        "holds"
        if share >= TRAINABLE_HOLDS
        else ("partly holds" if share >= TRAINABLE_PARTLY else "does not hold")
    )
    lines.append(
        f"**Trainable where L ≲ 6 ξ_c: {holds}** here: {agree} of {len(table)} configs "
        f"({100 * share:.0f} %) are on the side the theory predicts, {len(wrong)} on the wrong "
        f"side (holds: ≥ {100 * TRAINABLE_HOLDS:.0f} %, partly: ≥ {100 * TRAINABLE_PARTLY:.0f} %)."
    )
    if len(wrong):
        lines += ["", "Configs on the wrong side:", "",
                  "| depth L | σ_w² | σ_b² | 6 ξ_c | best train acc (%), mean (min–max) | "
                  "predicted | measured |", "|---:|---:|---:|---:|---:|:---|:---|"]  # fmt: skip
        for _, r in wrong.iterrows():
            lines.append(
                f"| {r['depth']} | {r['weight_variance']:.3g} | {r['bias_variance']:.3g} | "
                f"{_depth_scale(r['six_xi_c'])} | {fixed(100 * r['train_acc'])} "
                f"({fixed(100 * r['train_acc_min'])}–{fixed(100 * r['train_acc_max'])}) | "
                f"{'trains' if r['inside'] else 'does not train'} | "
                f"{'trained' if r['trained'] else 'did not train'} |"
            )
    return lines


def _steps_cell(r: pd.Series) -> str:
    if r["reached"] == 0:
        return f"not within {step_text(r['last_step'])}"
    text = (
        f"{step_text(r['median_steps'])} ({step_text(r['min_steps'])}–{step_text(r['max_steps'])})"
    )
    return text + (f", {r['n'] - r['reached']} of {r['n']} never" if r["reached"] < r["n"] else "")


def isometry_markdown(table: pd.DataFrame) -> list[str]:
    """Pennington et al.'s claim: steps to the target accuracy per config, and per activation
    whether orthogonal weights got there sooner than Gaussian ones."""
    if table.empty:
        return ["No verdict: no runs."]
    lines = [
        f"Steps until the training accuracy (after an epoch) first reaches "
        f"{100 * ISOMETRY_TARGET:.0f} %: median over seeds (min–max).",
        "",
        "| config | n | σ_w² | σ_b² | χ₁ predicted | steps to "
        f"{100 * ISOMETRY_TARGET:.0f} % train acc |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['label']} | {r['n']} | {fixed(r['weight_variance'], 3)} | "
            f"{fixed(r['bias_variance'], 3)} | {fixed(r['chi1_predicted'], 3)} | "
            f"{_steps_cell(r)} |"
        )
    pairs = isometry_pairs(table)
    lines.append("")
    if pairs.empty:
        return [*lines, "No verdict: each activation needs one orthogonal and one Gaussian config."]
    speed = dict(zip(pairs["activation"], pairs["speedup"], strict=True))
    for _, p in pairs.iterrows():
        faster = p["speedup"] > 1
        how = "every orthogonal seed before every Gaussian one" if p["separated"] else (
            "on the median; the seeds overlap" if faster else "")  # fmt: skip
        lines.append(
            f"- **{p['activation']}: orthogonal {'faster' if faster else 'not faster'}** "
            f"({p['orthogonal']} vs {p['gaussian']}): {step_text(p['orthogonal_steps'])} vs "
            f"{step_text(p['gaussian_steps'])} steps (median, a seed that never got there "
            f"counted as the last step + 1), ×{p['speedup']:.2g}"
            + (f", {how}" if how else "")
            + "."
        )
    tanh, relu = speed.get("tanh", np.nan), speed.get("relu", np.nan)
    if np.isfinite(tanh) and np.isfinite(relu):
        holds = tanh > 1 and tanh > relu
        lines.append(
            f"- **Orthogonal init speeds up tanh at χ₁ = 1 more than ReLU: "
            f"{'holds' if holds else 'does not hold'}** here (×{tanh:.2g} vs ×{relu:.2g})."
        )
    return lines
