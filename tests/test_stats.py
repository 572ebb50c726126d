"""Replicate statistics (gradsweep.stats) against independent NumPy / SciPy computations."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from synthetic import Run, RunData, aggregate_runs, config_id, make_run, run_settings, write_run

from gradsweep import stats
from gradsweep.reference import position
from gradsweep.verdicts import ONE_LAYER, dynamic_verdict, escape_epoch

ACC = [0.958, 0.962, 0.965, 0.954, 0.109]  # four seeds learn, one never does
RATIOS = [143.0, 98.0, 210.0, 160.0, 1252.0]


def test_mean_interval_matches_scipy() -> None:
    n, mean, lo, hi = stats.mean_interval(ACC)
    ref = sps.t.interval(0.95, len(ACC) - 1, loc=np.mean(ACC), scale=sps.sem(ACC))
    assert n == 5 and mean == pytest.approx(np.mean(ACC))
    assert (lo, hi) == pytest.approx(ref)
    # scipy's own one-sample t-test confidence interval agrees too
    ci = sps.ttest_1samp(ACC, 0).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_geometric_interval_on_log_scale() -> None:
    n, gmean, lo, hi = stats.geometric_interval(RATIOS)
    logs = np.log10(RATIOS)
    ref = sps.t.interval(0.95, 4, loc=logs.mean(), scale=sps.sem(logs))
    assert n == 5 and gmean == pytest.approx(sps.gmean(RATIOS))
    assert (lo, hi) == pytest.approx((10 ** ref[0], 10 ** ref[1]))
    assert lo < gmean < hi


def test_bounded_interval_is_cut_to_the_unit_interval() -> None:
    """Accuracies near 100 %: SciPy's t-interval crosses 1, ours stops there; the mean and
    the lower bound are SciPy's. Below 3 values there is no interval at all."""
    acc = [0.999, 1.0, 0.97]
    ref = sps.t.interval(0.95, 2, loc=np.mean(acc), scale=sps.sem(acc))
    assert ref[1] > 1  # the uncut interval leaves what an accuracy can take
    n, mean, lo, hi = stats.bounded_interval(acc)
    assert (n, mean, lo, hi) == (3, pytest.approx(np.mean(acc)), pytest.approx(ref[0]), 1.0)
    near_zero = [0.001, 0.0, 0.03]
    assert stats.bounded_interval(near_zero)[2] == 0.0
    for two in ([0.5, 0.9], [0.96, 0.96]):
        n, mean, lo, hi = stats.bounded_interval(two)
        assert n == 2 and mean == pytest.approx(np.mean(two)) and np.isnan(lo) and np.isnan(hi)
    # ratios: below 3 values no interval either; from 3 on both bounds are positive
    assert np.isnan(stats.geometric_interval([1e-3, 1e3])[2])
    _, _, lo, hi = stats.geometric_interval([1e-6, 1e-2, 10.0])
    assert 0 < lo < hi


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 30])
def test_wilson_interval_matches_scipy(n: int) -> None:
    for k in range(n + 1):
        ci = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert stats.wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert all(np.isnan(stats.wilson_interval(0, 0)))


def test_single_value_and_non_finite() -> None:
    assert stats.mean_interval([0.9])[0] == 1
    n, mean, lo, hi = stats.mean_interval([0.9, np.nan, np.inf])
    assert (n, mean) == (1, 0.9) and np.isnan(lo) and np.isnan(hi)
    assert stats.mean_interval([])[0] == 0
    # zero and inf ratios have no logarithm: left out of the geometric mean
    n, g, _, _ = stats.geometric_interval([10.0, 1000.0, 0.0, np.inf])
    assert n == 2 and g == pytest.approx(100.0)
    assert position(96.3, np.nan, np.nan) == "n = 1, no interval"
    assert [position(v, 95.0, 96.0) for v in (94, 95.5, 97)] == ["below", "inside", "above"]


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [
        ([143, 150, 102, 67, 36, 7, 0.9, 0.5, 0.7], 5),  # the sigmoid 4 x 100, seed 0
        ([1.0, 1.2, 0.9], 0),  # healthy from the start
        ([145, 300, 800, 1252], None),  # never escapes
        ([5, 20, 5, 5], 2),  # left the band once: escapes after the last exit
        ([5, 5, 20], None),  # leaves the band at the end
        ([0.01, 0.05, 0.2], 2),  # exploding start
    ],
)
def test_escape_epoch(ratios: list[float], expected: int | None) -> None:
    got = escape_epoch(pd.Series(ratios, dtype=float))
    assert (np.isnan(got) and expected is None) or got == expected
    # independent check: every epoch from the escape on is inside [0.1, 10], the one before not
    r = np.asarray(ratios, dtype=float)
    inside = (r >= 0.1) & (r <= 10)
    if expected is not None:
        assert inside[expected:].all() and (expected == 0 or not inside[expected - 1])


def test_dynamic_verdict_names_both_phases() -> None:
    r = pd.Series([143, 150, 102, 67, 36, 7, 0.9, 0.5, 0.7], dtype=float)
    assert dynamic_verdict("ok", r, escape_epoch(r)) == "vanishing until epoch 5 → healthy"
    assert dynamic_verdict("ok", pd.Series([1.0, 2.0]), 0.0) == "healthy"
    never = pd.Series([145.0, 300.0, 1252.0])
    assert dynamic_verdict("ok", never, np.nan) == "vanishing throughout"
    late = pd.Series([1.0, 2.0, 20.0, 30.0])
    assert dynamic_verdict("ok", late, np.nan) == "healthy → vanishing from epoch 2"
    assert dynamic_verdict("diverged", r, 5.0) == "diverged"


def test_config_summary_against_numpy() -> None:
    base = {"experiment": "sigmoid_depth", "dataset": "mnist", "depth": 4,
            "widths": "100-100-100-100", "activation": "sigmoid", "init": "scaled_normal",
            "epochs": 60, "learning_rate": 0.5, "status": "ok"}  # fmt: skip
    runs = pd.DataFrame(
        [
            {
                **base,
                "seed": s,
                "best_val_acc": a,
                "test_acc": a - 0.002,
                "grad_ratio_init": r,
                "grad_ratio_final": r / 150,
                "escape_epoch": e,
            }
            for s, a, r, e in zip(range(5), ACC, RATIOS, [5, 30, 5, 6, np.nan], strict=True)
        ]  # fmt: skip
        + [
            {
                **base,
                "depth": 1,
                "widths": "100",
                "seed": 0,
                "best_val_acc": 0.95,
                "test_acc": 0.95,
                "grad_ratio_init": np.nan,  # one hidden layer: no ratio, as aggregate writes
                "grad_ratio_final": np.nan,
                "escape_epoch": np.nan,
            }
        ]  # fmt: skip
    )
    runs["verdict"] = (
        ["vanishing until epoch 5 → healthy"] * 4
        + ["vanishing throughout"]
        + ["n/a: one hidden layer"]
    )
    summary = stats.config_summary(runs).set_index("depth")
    deep = summary.loc[4]
    # one seed of five never learned (10.9 % < 2 x chance): the statistics are over the other
    # four, the never-learned fraction over all five
    acc, ratios = np.array(ACC[:4]), RATIOS[:4]
    lo, hi = sps.t.interval(0.95, 3, loc=acc.mean(), scale=sps.sem(acc))
    assert deep["n"] == 5 and deep["seeds"] == "0,1,2,3,4" and deep["n_basis"] == 4
    assert deep["best_val_acc_n"] == 4
    assert deep["best_val_acc_mean"] == pytest.approx(acc.mean())
    assert (deep["best_val_acc_lo"], deep["best_val_acc_hi"]) == pytest.approx((lo, hi))
    assert deep["best_val_acc_median"] == pytest.approx(np.median(acc))
    assert (deep["best_val_acc_min"], deep["best_val_acc_max"]) == (acc.min(), acc.max())
    assert deep["n_never_learned"] == 1
    wilson = sps.binomtest(1, 5).proportion_ci(0.95, method="wilson")
    assert (deep["never_learned_lo"], deep["never_learned_hi"]) == pytest.approx(
        (wilson.low, wilson.high)
    )
    assert deep["grad_ratio_init_mean"] == pytest.approx(sps.gmean(ratios))
    assert deep["grad_ratio_final_mean"] == pytest.approx(sps.gmean(ratios) / 150)
    assert deep["n_never_escaped"] == 0 and deep["escape_epoch_median"] == 5.5
    assert (deep["escape_epoch_min"], deep["escape_epoch_max"]) == (5, 30)
    assert deep["verdicts"] == (
        "4 × vanishing until epoch 5 → healthy; never learned: vanishing throughout"
    )
    # the all-seed mean the issue found meaningless: 79 % with an interval beyond 100 %
    everyone = sps.t.interval(0.95, 4, loc=np.mean(ACC), scale=sps.sem(ACC))
    assert everyone[1] > 1 and deep["best_val_acc_hi"] <= 1
    one = summary.loc[1]
    assert one["n"] == 1 and np.isnan(one["best_val_acc_lo"]) and one["n_never_learned"] == 0
    assert one["one_layer"] and one["verdicts"] == "n/a: one hidden layer"
    assert np.isnan(one["escape_epoch_median"]) and one["n_never_escaped"] == 0


# --------------------------------------------------------------------- update ratios (issue 15)


def stepped_run(depth: int = 3, **run: Any) -> RunData:
    """A synthetic run of 3 epochs of 4 steps whose step rows (kernel and bias of every layer,
    output layer included) have random relative updates; layer 1's kernel has none at step 2
    (NaN: the ratio skips that step), and the probe rows' 99 must be ignored."""
    data = make_run(Run("x", (16,) * depth, epochs=3, steps_per_epoch=4, **run))
    t = data.traces
    gap = (t["source"] == "step") & (t["step"] == 2) & (t["layer"] == 1) & (t["param"] == "kernel")
    t.loc[gap, "relative_update"] = np.nan
    t.loc[t["source"] == "probe", "relative_update"] = 99.0
    return data


def numpy_update_ratio(trace: pd.DataFrame, depth: int, epoch: int) -> float:
    """The oracle: per step, last ÷ first hidden kernel's relative update, median over steps."""
    steps = trace[(trace.source == "step") & (trace.param == "kernel") & (trace.epoch == epoch)]
    first = steps[steps.layer == 1].sort_values("step")["relative_update"].to_numpy()
    last = steps[steps.layer == depth].sort_values("step")["relative_update"].to_numpy()
    ratio = last / first
    return float(np.median(ratio[~np.isnan(ratio)]))


def test_update_ratio_against_numpy() -> None:
    from gradsweep.aggregate import update_ratio

    trace = stepped_run().traces
    for epoch in (1, 3):
        assert update_ratio(trace, 3, epoch) == pytest.approx(numpy_update_ratio(trace, 3, epoch))
    # the NaN step of epoch 1 is left out: three of four steps remain
    assert update_ratio(trace, 3, 1) != pytest.approx(update_ratio(trace, 3, 2))
    assert update_ratio(trace.drop(columns="relative_update"), 3, 1) != update_ratio(trace, 3, 1)
    assert np.isnan(update_ratio(trace.drop(columns="relative_update"), 3, 1))
    assert np.isnan(update_ratio(trace.assign(relative_update=np.nan), 3, 1))
    one = stepped_run(depth=1).traces
    assert np.isnan(update_ratio(one, 1, 1))  # one hidden layer: no ratio


# settings added after TRAINER_VERSION 2, left out of a config at their defaults
NEWER_SETTINGS = ("optimizer", "nesterov", "normalization", "residual", "weight_variance",
                  "bias_variance")  # fmt: skip


def test_aggregate_writes_update_ratios_and_remedy_settings(tmp_path) -> None:
    """Through aggregate() and Parquet files: the update ratios of epoch 1 and the last epoch
    (NumPy oracle on each run's own traces), the remedy settings as columns, and a config_id
    equal to the one a run without remedy keys had before they existed."""
    remedy = {"optimizer": "adam", "residual": True}
    data = [stepped_run(), stepped_run(settings=remedy, even_updates=True)]
    back = aggregate_runs([write_run(d, tmp_path / "runs") for d in data], tmp_path).runs
    for epoch, col in ((1, "update_ratio_init"), (3, "update_ratio_final")):
        expected = [numpy_update_ratio(d.traces, 3, epoch) for d in data]
        assert back[col].tolist() == pytest.approx(expected)
    assert expected[1] == pytest.approx(1, rel=0.5) and expected[0] > 5  # Adam evens them out
    assert back[["optimizer", "nesterov", "normalization", "residual"]].values.tolist() == [
        ["sgd", False, "none", False],
        ["adam", False, "none", True],
    ]
    plain = config_id(run_settings("x", data[0].info["config"]))
    assert "optimizer" not in data[0].info["config"]  # run.json leaves defaults out
    assert back["config_id"].iloc[0] == plain != back["config_id"].iloc[1]
    # a config that leaves every remedy (and weight_variance, bias_variance) at its default
    # hashes as if they did not exist:
    # sha256 of its other settings' key-sorted JSON (hashlib here, independently)
    base = {"epochs": 30, "batch_size": 10, "learning_rate": 0.5, "l2": 5.0, "l2_n": None,
            "loss": "sigmoid_cross_entropy", "bias_init": "normal", "weight_scale": 1.0,
            "train_subset": None, "probe_size": 1000, "trace_every": 1, "dataset": "digits",
            "widths": [16] * 4, "activation": "sigmoid", "init": "scaled_normal", "seed": 0,
            "experiment": "x", "run": "r", "trainer_version": 2}  # fmt: skip
    before = {k: v for k, v in run_settings("x", base).items() if k not in NEWER_SETTINGS}
    digest = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:8]
    old = config_id(run_settings("x", base))
    assert old == f"x/d4-w16-16-16-16-sigmoid-scaled_normal-{digest}"
    # defaults as Parquet gives them back (numpy bools and strings) hash as left out
    row = run_settings("x", base)
    row.update(nesterov=np.False_, residual=np.False_, optimizer=np.str_("sgd"))
    assert config_id(row) == old


def test_z_drift_reads_the_last_hidden_layer() -> None:
    from gradsweep.aggregate import z_drift

    rng = np.random.default_rng(3)
    cols = ("z_p15", "z_p50", "z_p85")
    z = {(layer, c): rng.normal(0, layer, size=6) for layer in (1, 2, 3) for c in cols}
    rows = [
        {"source": "probe", "epoch": e, "layer": layer, "param": param,
         **{c: z[(layer, c)][e] for c in cols}}
        for e in range(6)
        for layer in (1, 2, 3)
        for param in ("bias", "kernel")
    ] + [{"source": "probe", "epoch": e, "layer": 4, "param": "bias",
          **dict.fromkeys(cols, np.nan)} for e in range(6)]  # fmt: skip
    probe = pd.DataFrame(rows)
    for layer in (1, 3):  # the largest of the three percentiles' ranges
        assert z_drift(probe, layer) == pytest.approx(max(np.ptp(z[(layer, c)]) for c in cols))
    only_median = probe.drop(columns=["z_p15", "z_p85"])
    assert z_drift(only_median, 3) == pytest.approx(np.ptp(z[(3, "z_p50")]))
    assert np.isnan(z_drift(probe.drop(columns=list(cols)), 3))
    assert np.isnan(z_drift(probe, 4))


def test_one_hidden_layer_has_no_ratio_in_runs_parquet(tmp_path) -> None:
    """Through aggregate() and Parquet: a one-hidden-layer net's ratio columns are null and
    its verdicts say so; a deep net's ratio follows the synthetic model, k ** (depth - 1)."""
    from synthetic import shrink, sweep

    runs = sweep([Run("x", (16,), noise=0.0), Run("x", (16,) * 3, noise=0.0),
                  Run("x", (16,), seed=1, diverge_at=3)], tmp_path).runs  # fmt: skip
    one, deep, diverged = (runs.iloc[i] for i in range(3))
    ratio_columns = [c for c in runs.columns if "ratio" in c]
    assert len(ratio_columns) == 6 and one[ratio_columns].isna().all()  # predicted too
    assert diverged[ratio_columns].isna().all()
    assert (one["verdict_init"], one["verdict_final"], one["verdict"]) == (ONE_LAYER,) * 3
    assert np.isnan(one["escape_epoch"])
    assert (diverged["verdict_init"], diverged["verdict"]) == (ONE_LAYER, "diverged")
    k = shrink("sigmoid", "scaled_normal")
    assert deep["grad_ratio_init"] == pytest.approx(k**2)
    assert deep["verdict_init"] == ("vanishing" if k**2 > 10 else "healthy")
