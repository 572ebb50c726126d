"""Claims checked across an experiment's configs, as numbers (the words: gradsweep.table.claims).

- ``bn_speed`` (Ioffe & Szegedy 2015, §4.1): with batch norm the net reaches the accuracy of
  the net without it sooner and ends higher, and the last hidden layer's input distribution
  moves less over training;
- ``remedies``: per config the gradient and update ratios and the accuracy, against the plain
  SGD sigmoid net (no normalization, no shortcut). The remedies figure draws the same table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradsweep.facets import config_labels, configs_of
from gradsweep.stats import finite, geometric_interval
from gradsweep.verdicts import EXPLODING_RATIO, NEVER_LEARNED_BELOW, VANISHING_RATIO, never_learned

# runs.parquet's ratio columns the remedies compare: last ÷ first hidden layer
REMEDY_RATIOS = ("grad_ratio_init", "grad_ratio_final", "update_ratio_init", "update_ratio_final")
PLAIN = {"activation": "sigmoid", "optimizer": "sgd", "normalization": "none", "residual": False}


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
    configs = configs_of(runs)
    labels = dict(zip(configs["config_id"], config_labels(configs), strict=True))
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


def remedies_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config, in panel order: its label, n, per ratio column the geometric mean,
    min and max over the seeds; the test accuracy's mean, min and max (in %); how many seeds
    never learned; whether it is the plain-SGD sigmoid config and, when there is exactly one
    such config, each config's accuracy difference from it (``delta_acc``, in points)."""
    configs = configs_of(runs)
    rows = []
    for label, (_, cfg) in zip(config_labels(configs), configs.iterrows(), strict=True):
        members = runs[runs["config_id"] == cfg["config_id"]]
        row: dict = {"config_id": cfg["config_id"], "label": label, "n": len(members)}
        for col in REMEDY_RATIOS:
            v = finite(members[col]) if col in members else np.array([])
            v = v[v > 0]
            row[col] = geometric_interval(v)[1] if len(v) else np.nan
            row[f"{col}_min"] = float(v.min()) if len(v) else np.nan
            row[f"{col}_max"] = float(v.max()) if len(v) else np.nan
        acc = finite(members["test_acc"]) * 100
        row["test_acc"] = float(acc.mean()) if len(acc) else np.nan
        row["test_acc_min"] = float(acc.min()) if len(acc) else np.nan
        row["test_acc_max"] = float(acc.max()) if len(acc) else np.nan
        row["n_never_learned"] = int(never_learned(members["best_val_acc"]).sum())
        row["plain"] = all(str(cfg.get(k, v)) == str(v) for k, v in PLAIN.items())
        rows.append(row)
    table = pd.DataFrame(rows)
    plain = table[table["plain"]] if len(table) else table
    if len(plain) == 1:
        table["delta_acc"] = table["test_acc"] - plain["test_acc"].iloc[0]
    return table


def update_band(x: float) -> str:
    """How the first and last hidden layers' steps compare, from their update ratio."""
    if not np.isfinite(x):
        return "—"
    return (
        "alike"
        if EXPLODING_RATIO <= x <= VANISHING_RATIO
        else ("first slower" if x > 1 else "first faster")
    )
