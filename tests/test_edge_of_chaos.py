"""edge_of_chaos and isometry (issue 23, items 4-5): the trainability claim's counts, the
orthogonal-vs-Gaussian verdict and their figures, on synthetic runs (tests/synthetic.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.optimize
import synthetic

from gradsweep.claims import (
    isometry_cells,
    isometry_pairs,
    steps_to_accuracy,
    trainable_cells,
    trainable_counts,
)
from gradsweep.plotting.edge_of_chaos import plot_slopes, plot_trainability, slope_table
from gradsweep.table.claims import claim_section
from gradsweep.verdicts import ISOMETRY_TARGET

SB2 = 0.05


def _gauss(f) -> float:
    """E[f(z)], z ~ N(0, 1), by scipy's adaptive quadrature (not meanfield's rule)."""
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    return scipy.integrate.quad(lambda z: f(z) * pdf(z), -12, 12, limit=200)[0]


def six_xi_c_ordered(sigma_w2: float, sigma_b2: float = SB2) -> float:
    """6 ξ_c of tanh in the ordered phase (c* = 1, χ_c = χ₁), from scipy alone."""
    q = scipy.optimize.brentq(
        lambda q: sigma_w2 * _gauss(lambda z: math.tanh(math.sqrt(q) * z) ** 2) + sigma_b2 - q,
        1e-6, 100,
    )  # fmt: skip
    chi = sigma_w2 * _gauss(lambda z: math.cosh(math.sqrt(q) * z) ** -4)
    assert chi < 1
    return -6 / math.log(chi)


def test_ordered_oracle_puts_the_boundary_where_the_test_expects():
    # the cells below rely on these: 6 ξ_c ≈ 21.8 at σ_w² = 1 and ≈ 40.8 at 1.25
    assert 20 < six_xi_c_ordered(1.0) < 30
    assert 30 < six_xi_c_ordered(1.25) < 60


@pytest.fixture(scope="module")
def edge_sweep() -> synthetic.Sweep:
    # trains iff depth ≤ 30, except two configs on the wrong side of 6 ξ_c; σ_w² = 4 is chaotic
    # with 6 ξ_c ≈ 42 (between 30 and 60 whatever the quadrature)
    cells: dict = {}
    for w in (1.0, 1.25, 4.0):
        for d in (10, 20, 30, 60, 100):
            cells[(d, w)] = 0.8 if d <= 30 else 0.1
    cells[(20, 1.25)] = (0.1, 0.12)  # inside, did not train
    cells[(30, 1.0)] = (0.15, 0.3)  # outside, trained: mean 22.5 % ≥ 20 %
    slopes = {k: (-0.1 + 0.01 * i, -0.1 + 0.012 * i) for i, k in enumerate(cells)}
    return synthetic.edge_of_chaos_sweep(cells, slopes=slopes)


def test_trainable_counts_and_wrong_side_configs(edge_sweep):
    table = trainable_cells(edge_sweep.runs, edge_sweep.metrics)
    assert len(table) == 15
    six = {w: six_xi_c_ordered(w) for w in (1.0, 1.25)}
    inside = {(d, w) for d in (10, 20, 30, 60, 100) for w in (1.0, 1.25) if d <= six[w]}
    inside |= {(d, 4.0) for d in (10, 20, 30)}
    got = {(r.depth, r.weight_variance) for r in table.itertuples() if r.inside}
    assert got == inside
    acc = table.set_index(["depth", "weight_variance"])["train_acc"]
    # best training accuracy: the metrics' max over epochs ≥ 1, mean over seeds
    best = edge_sweep.metrics[edge_sweep.metrics["epoch"] >= 1].groupby("run_id")["train_acc"].max()
    runs = edge_sweep.runs.set_index("run_id")
    expected = best.groupby(
        [runs.loc[best.index, "depth"], runs.loc[best.index, "weight_variance"]]
    )
    pd.testing.assert_series_equal(
        acc.sort_index(), expected.mean().sort_index(), check_names=False
    )
    counts = trainable_counts(table)
    assert counts.to_numpy().tolist() == [[7, 1], [1, 6]]
    wrong = table[~table["agrees"]]
    assert sorted(zip(wrong["depth"], wrong["weight_variance"], strict=True)) == [
        (20, 1.25),
        (30, 1.0),
    ]


def test_trainable_claim_section_lists_every_wrong_side_config(edge_sweep):
    text = "\n".join(claim_section("trainable_depth", edge_sweep.runs, edge_sweep.metrics))
    assert "| inside (L ≤ 6 ξ_c) | 7 | 1 |" in text
    assert "| outside (L > 6 ξ_c) | 1 | 6 |" in text
    assert "partly holds** here: 13 of 15 configs (87 %)" in text
    assert "| 30 | 1 | 0.05 | 21.8 | 22.50 (15.00–30.00) | does not train | trained |" in text
    assert "| 20 | 1.25 | 0.05 | 40.8 | 11.00 (10.00–12.00) | trains | did not train |" in text
    assert claim_section("trainable_depth", edge_sweep.runs, None)[0].startswith(
        "Measured verdict: needs metrics.parquet"
    )


def test_trainability_and_slope_figures(edge_sweep, tmp_path):
    table = plot_trainability(
        edge_sweep.runs, edge_sweep.metrics, tmp_path / "t.png", "edge_of_chaos"
    )
    assert len(table) == 15
    synthetic.check_png(tmp_path / "t.png", 900, 800)
    slopes = plot_slopes(edge_sweep.runs, tmp_path / "s.png", "edge_of_chaos")
    synthetic.check_png(tmp_path / "s.png", 800, 800)
    # per config: the mean of the seeds' measured slopes (seed s adds 0.01 s), min and max
    assert len(slopes) == 15
    np.testing.assert_allclose(slopes["measured_max"] - slopes["measured_min"], 0.01)
    np.testing.assert_allclose(slopes["measured"] - slopes["measured_min"], 0.005)
    assert slope_table(edge_sweep.runs.drop(columns="grad_slope_init")).empty


def test_figures_without_data_say_so(edge_sweep, tmp_path):
    empty = edge_sweep.runs.head(0)
    assert plot_trainability(empty, edge_sweep.metrics, tmp_path / "t.png").empty
    assert plot_slopes(empty, tmp_path / "s.png").empty
    assert (tmp_path / "s.png").exists() and (tmp_path / "t.png").exists()


# --------------------------------------------------------------------------- isometry


def _first_step(acc: float, rate: float, epochs: int, steps_per_epoch: int) -> float:
    """The oracle: synthetic's accuracy curve 0.1 + (acc − 0.1)·shape(e), first e ≥ target."""
    for e in range(epochs + 1):
        shape = (1 - math.exp(-rate * e)) / (1 - math.exp(-rate * epochs))
        if 0.1 + (acc - 0.1) * shape >= ISOMETRY_TARGET:
            return float(e * steps_per_epoch)
    return math.nan


def _isometry_sweep(rates: dict[tuple[str, str], float]) -> synthetic.Sweep:
    runs = [
        synthetic.Run("isometry", (16,) * 6, act, init, seed, epochs=8, acc=0.9,
                      rate=rate * (1 + 0.1 * seed))
        for (act, init), rate in rates.items()
        for seed in (0, 1, 2)
    ]  # fmt: skip
    return synthetic.sweep(runs)


def test_isometry_steps_and_verdict():
    rates = {("tanh", "orthogonal"): 1.0, ("tanh", "scaled_normal"): 0.25,
             ("relu", "orthogonal"): 0.5, ("relu", "scaled_normal"): 0.5}  # fmt: skip
    sw = _isometry_sweep(rates)
    steps = steps_to_accuracy(sw.metrics)
    for run in sw.runs.itertuples():
        rate = rates[(run.activation, run.init)] * (1 + 0.1 * run.seed)
        assert steps[run.run_id] == _first_step(0.9, rate, 8, 20), run.run_id
    table = isometry_cells(sw.runs, sw.metrics)
    pairs = isometry_pairs(table).set_index("activation")
    assert pairs.loc["tanh", "speedup"] > 1
    assert pairs.loc["relu", "speedup"] == 1
    # every orthogonal tanh seed before every Gaussian one; ReLU's seeds tie
    assert pairs.loc["tanh", "separated"] and not pairs.loc["relu", "separated"]
    text = "\n".join(claim_section("isometry_speed", sw.runs, sw.metrics))
    assert "**tanh: orthogonal faster**" in text
    assert "**relu: orthogonal not faster**" in text
    assert "more than ReLU: holds** here" in text


def test_isometry_verdict_from_the_numbers_not_hard_coded():
    rates = {("tanh", "orthogonal"): 0.25, ("tanh", "scaled_normal"): 1.0,
             ("relu", "orthogonal"): 0.5, ("relu", "scaled_normal"): 0.5}  # fmt: skip
    text = "\n".join(claim_section("isometry_speed", *_sweep_tables(rates)))
    assert "**tanh: orthogonal not faster**" in text
    assert "more than ReLU: does not hold** here" in text


def _sweep_tables(rates: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    sw = _isometry_sweep(rates)
    return sw.runs, sw.metrics
