"""Claims checked across an experiment's configs, as numbers (the words: gradsweep.table.claims).

- ``bn_speed`` (Ioffe & Szegedy 2015, §4.1): with batch norm the net reaches the accuracy of
  the net without it sooner and ends higher, and the last hidden layer's input distribution
  moves less over training;
- ``remedies``: per config the gradient and update ratios and the accuracy, against the plain
  SGD sigmoid net (no normalization, no shortcut). The remedies figure draws the same table;
- ``trainable_depth`` (Schoenholz et al. 2017): nets train where their depth L ≲ 6 ξ_c, the
  correlation depth scale of gradsweep.meanfield (``trainable_cells``, ``trainable_counts``);
- ``isometry_speed`` (Pennington et al. 2017): at χ₁ = 1 a deep tanh net with orthogonal
  weights learns faster than with Gaussian ones, and ReLU gains little, as it cannot reach
  dynamical isometry (``isometry_cells``, ``isometry_pairs``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from gradsweep.facets import config_labels, configs_of
from gradsweep.meanfield import mean_field
from gradsweep.stats import finite, geometric_interval
from gradsweep.verdicts import (
    EXPLODING_RATIO,
    ISOMETRY_TARGET,
    NEVER_LEARNED_BELOW,
    TRAINED_AT,
    VANISHING_RATIO,
    never_learned,
)

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


# --------------------------------------------------------------------------- edge of chaos


def best_train_acc(metrics: pd.DataFrame) -> pd.Series:
    """Per run (index run_id) the best training-set accuracy over the trained epochs (epoch ≥ 1;
    the run's ``train_subset``, evaluated after each epoch); NaN where none is finite."""
    m = metrics[metrics["epoch"] >= 1]
    acc = pd.to_numeric(m["train_acc"], errors="coerce")
    return acc.groupby(m["run_id"]).max()


def correlation_depth(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """ξ_c of (activation, σ_w², σ_b²), cached (meanfield's correlation map is the slow part)."""
    return _correlation_depth(str(activation), float(sigma_w2), float(sigma_b2))


@cache
def _correlation_depth(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    return float(mean_field(activation, sigma_w2, sigma_b2).xi_c)


def trainable_cells(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Schoenholz et al.'s trainability claim per config (depth × σ_w², one activation and σ_b²):
    the mean over seeds of the best training accuracy (``train_acc``, seed ``train_acc_min`` /
    ``_max``), whether the config trained (that mean ≥ TRAINED_AT), ξ_c and 6 ξ_c, whether
    its depth is inside the predicted region (L ≤ 6 ξ_c; ξ_c = inf at χ₁ = 1) and whether
    the two agree. Configs without a mean-field σ_w² (theory.not_applicable) are left out."""
    best = best_train_acc(metrics)
    runs = runs[runs["weight_variance"].notna() & runs["bias_variance"].notna()]
    rows = []
    for _, cfg in configs_of(runs).iterrows():
        members = runs[runs["config_id"] == cfg["config_id"]]
        acc = best.reindex(members["run_id"]).to_numpy(dtype=float)
        acc = acc[np.isfinite(acc)]
        xi = correlation_depth(cfg["activation"], cfg["weight_variance"], cfg["bias_variance"])
        depth = int(cfg["depth"])
        mean = float(acc.mean()) if len(acc) else np.nan
        rows.append({
            "config_id": cfg["config_id"], "activation": cfg["activation"], "depth": depth,
            "weight_variance": float(cfg["weight_variance"]),
            "bias_variance": float(cfg["bias_variance"]), "n": len(members),
            "train_acc": mean, "train_acc_min": float(acc.min()) if len(acc) else np.nan,
            "train_acc_max": float(acc.max()) if len(acc) else np.nan,
            "trained": bool(mean >= TRAINED_AT), "xi_c": xi, "six_xi_c": 6 * xi,
            "inside": bool(depth <= 6 * xi),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        table["agrees"] = table["trained"] == table["inside"]
        table = table.sort_values(["weight_variance", "depth"], ignore_index=True)
    return table


def trainable_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Configs that trained and did not, inside and outside L ≤ 6 ξ_c (a 2 × 2 table, rows
    inside/outside, columns trained/not trained)."""
    counts = pd.crosstab(table["inside"], table["trained"]).reindex(
        index=[True, False], columns=[True, False], fill_value=0
    )
    counts.index = ["inside (L ≤ 6 ξ_c)", "outside (L > 6 ξ_c)"]
    counts.columns = ["trained", "did not train"]
    return counts


# --------------------------------------------------------------------------- dynamical isometry


def steps_to_accuracy(metrics: pd.DataFrame, target: float = ISOMETRY_TARGET) -> pd.Series:
    """Per run (index run_id) the first step after which its training accuracy reached
    ``target`` (NaN: not within the run)."""
    m = metrics[pd.to_numeric(metrics["train_acc"], errors="coerce") >= target]
    first = m.groupby("run_id")["step"].min().astype(float)
    return first.reindex(metrics["run_id"].unique())


def isometry_cells(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Pennington et al.'s comparison per config (activation × init): per seed the steps to
    reach ISOMETRY_TARGET training accuracy; their median, min and max, how many seeds
    reached it, the config's σ_w², σ_b² and predicted χ₁. One row per config, in panel
    order."""
    steps = steps_to_accuracy(metrics)
    configs = configs_of(runs)
    rows = []
    for label, (_, cfg) in zip(config_labels(configs), configs.iterrows(), strict=True):
        members = runs[runs["config_id"] == cfg["config_id"]]
        s = steps.reindex(members["run_id"]).to_numpy(dtype=float)
        hit = s[np.isfinite(s)]
        last = metrics[metrics["run_id"].isin(set(members["run_id"]))]["step"].max()
        rows.append({
            "config_id": cfg["config_id"], "label": label, "activation": cfg["activation"],
            "init": cfg["init"], "depth": int(cfg["depth"]), "n": len(members),
            "reached": len(hit), "median_steps": float(np.median(hit)) if len(hit) else np.nan,
            "min_steps": float(hit.min()) if len(hit) else np.nan,
            "max_steps": float(hit.max()) if len(hit) else np.nan,
            "last_step": float(last) if pd.notna(last) else np.nan,
            # a seed that never reached the target counts as the last step + 1: never faster
            "censored_median": float(np.median(np.where(np.isfinite(s), s, last + 1)))
            if len(s) and pd.notna(last) else np.nan,
            "weight_variance": cfg.get("weight_variance", np.nan),
            "bias_variance": cfg.get("bias_variance", np.nan),
            "chi1_predicted": cfg.get("chi1_predicted", np.nan),
        })  # fmt: skip
    return pd.DataFrame(rows)


def isometry_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Per activation, orthogonal against its Gaussian config(s): both configs' median steps
    (a seed that never reached the target counts as the run's last step + 1, so a config
    where it did is never faster), the speed-up (Gaussian ÷ orthogonal median) and whether
    the seeds separate (every orthogonal seed faster than every Gaussian one)."""
    rows = []
    for act, group in table.groupby("activation", sort=False):
        ortho = group[group["init"] == "orthogonal"]
        for _, g in group[group["init"] != "orthogonal"].iterrows():
            if len(ortho) != 1:
                continue
            o = ortho.iloc[0]
            o_med, g_med = o["censored_median"], g["censored_median"]
            rows.append({
                "activation": act, "orthogonal": o["label"], "gaussian": g["label"],
                "orthogonal_steps": o_med, "gaussian_steps": g_med,
                "speedup": g_med / o_med if o_med > 0 else np.nan,
                # a Gaussian seed that never got there is later than any that did
                "separated": bool(o["reached"] == o["n"] and o["max_steps"] < (
                    g["min_steps"] if g["reached"] else np.inf)),
            })  # fmt: skip
    return pd.DataFrame(rows)
