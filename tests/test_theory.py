"""gradsweep.theory: a run's init as the mean-field (σ_w², σ_b²), checked against the weights
gradsweep.model really draws, and the predicted columns of runs.parquet and results.md,
checked against gradsweep.meanfield called directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import synthetic
from synthetic import Run

from gradsweep import meanfield, theory
from gradsweep.io import read_run_traces
from gradsweep.model import DenseNet
from gradsweep.registry import INITS
from gradsweep.table.configs import PREDICTED, SLOPE, config_table

WIDE = 1000  # a hidden-to-hidden kernel of 10⁶ weights


def settings(**kw: object) -> dict[str, object]:
    """A run's settings as runs.parquet holds them (the mapping reads only these)."""
    base = {"activation": "sigmoid", "widths": "100-100-100-100", "init": "scaled_normal",
            "bias_init": "normal", "weight_scale": 1.0, "normalization": "none",
            "residual": False}  # fmt: skip
    return base | kw


def empirical_sigma_w2(w: np.ndarray) -> tuple[float, float]:
    """fan_in · mean(w²) (the init has mean 0) and its standard error, from the sample."""
    fan_in = w.shape[1]  # Nielsen's w^l_jk: row j holds the weights into unit j
    sq = (w.astype(np.float64) ** 2).ravel()
    return fan_in * sq.mean(), fan_in * sq.std() / np.sqrt(sq.size)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("weight_scale", [1.0, 0.5])
def test_sigma_w2_is_what_the_real_init_draws(init: str, weight_scale: float) -> None:
    net = DenseNet([8, WIDE, WIDE, 2], "tanh", init, weight_scale=weight_scale, seed=4)
    measured, se = empirical_sigma_w2(net.kernels[1].numpy())  # hidden-to-hidden
    expected = theory.weight_variance(settings(init=init, widths=f"{WIDE}-{WIDE}",
                                               weight_scale=weight_scale))  # fmt: skip
    # 5 standard errors (≈ 0.1–0.2 % of σ_w² here): a wrong variance by a factor (truncation
    # uncorrected: ×0.77, uniform limit read as a std: ×3) is hundreds of SE away
    assert expected is not None
    assert abs(measured - expected) < 5 * se, (init, measured, expected, se)


@pytest.mark.parametrize("init", ["glorot_normal", "glorot_uniform", "normal"])
def test_width_dependent_inits_per_layer_and_null_for_unequal_widths(init: str) -> None:
    widths = [800, 400]
    net = DenseNet([8, *widths, 2], "tanh", init, seed=5)
    measured, se = empirical_sigma_w2(net.kernels[1].numpy())  # 800 → 400
    assert abs(measured - theory.layer_weight_variance(init, 800, 400)) < 5 * se
    assert theory.weight_variance(settings(init=init, widths="800-400")) is None
    assert "unequal widths" in (theory.not_applicable(settings(init=init, widths="800-400")) or "")
    # one hidden layer: no hidden-to-hidden layer to read a width-dependent σ_w² from
    assert theory.weight_variance(settings(init=init, widths="100")) is None
    # a fan-in init has its σ_w² at any widths and depths
    assert theory.weight_variance(settings(init="he_uniform", widths="800-400")) == 2.0
    assert theory.weight_variance(settings(init="he_uniform", widths="100")) == 2.0


def test_bias_variance_is_what_the_real_bias_init_draws() -> None:
    net = DenseNet([8, 20_000, 2], "tanh", "scaled_normal", bias_init="normal", seed=6)
    b = net.biases[0].numpy().astype(np.float64)
    se = (b**2).std() / np.sqrt(b.size)  # ≈ 1 %
    assert abs((b**2).mean() - theory.bias_variance(settings(bias_init="normal"))) < 5 * se
    zeros = DenseNet([8, 50, 2], "tanh", "scaled_normal", bias_init="zeros", seed=6)
    assert not zeros.biases[0].numpy().any()
    assert theory.bias_variance(settings(bias_init="zeros")) == 0.0


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"normalization": "batch_norm"}, "batch_norm"),
        ({"normalization": "layer_norm"}, "layer_norm"),
        ({"residual": True}, "residual"),
        ({"widths": "1-1-1-1"}, "width 1"),
    ],
)
def test_no_prediction_where_the_theory_does_not_apply(kw: dict, why: str) -> None:
    s = settings(**kw)
    assert why in (theory.not_applicable(s) or "")
    assert theory.prediction(s) == dict.fromkeys(theory.COLUMNS)


def test_the_issues_number() -> None:
    """Issue 23: 4 × 100 sigmoid, σ_w² = 1, σ_b² = 1: χ₁ ≈ 0.042, ratio χ₁^(−3/2) ≈ 116."""
    p = theory.prediction(settings())
    assert theory.variances(settings()) == {"weight_variance": 1.0, "bias_variance": 1.0}
    assert p["chi1_predicted"] == pytest.approx(0.04196, abs=5e-6)
    assert p["grad_ratio_predicted"] == pytest.approx(116.3, abs=0.05)


def test_runs_parquet_columns_against_meanfield(tmp_path) -> None:
    runs = [
        Run("mf", (100, 100, 100, 100)),
        Run("mf", (30, 30), settings={"weight_scale": 2.0}),
        Run("mf", (50, 50, 50), "tanh", "glorot_uniform", settings={"bias_init": "zeros"}),
        Run("mf", (100, 100, 100), "linear", "normal", shrink=0.1),
        Run("mf", (100,), "relu", "he_normal"),
        Run("mf", (100, 100, 100), settings={"normalization": "batch_norm"}),
        Run("mf", (1, 1, 1, 1)),
    ]
    table = synthetic.sweep(runs, tmp_path).runs.set_index("widths")
    expected = {  # widths: (activation, σ_w², σ_b², hidden layers)
        "100-100-100-100": ("sigmoid", 1.0, 1.0, 4),
        "30-30": ("sigmoid", 4.0, 1.0, 2),
        "50-50-50": ("tanh", 1.0, 0.0, 3),
        "100-100-100": ("linear", 100.0, 1.0, 3),
        "100": ("relu", 2.0, 1.0, 1),
    }
    for widths, (activation, w, b, depth) in expected.items():
        row = table[table["activation"] == activation].loc[widths]
        chi = float(meanfield.chi_1(activation, w, b))
        assert (row["weight_variance"], row["bias_variance"]) == (w, b)
        assert row["chi1_predicted"] == pytest.approx(chi, rel=1e-12)
        if depth == 1:  # no ratio (gradsweep.verdicts)
            assert pd.isna(row["grad_ratio_predicted"])
        else:
            assert row["grad_ratio_predicted"] == pytest.approx(chi ** (-(depth - 1) / 2))
    assert table.loc["1-1-1-1", list(theory.COLUMNS)].isna().all()
    bn = table[table["normalization"] == "batch_norm"]
    assert bn[list(theory.COLUMNS)].isna().all().all()


def test_results_table_shows_the_prediction_beside_the_measurement(tmp_path) -> None:
    runs = synthetic.sweep(
        [Run("mf", (100, 100, 100, 100), seed=s) for s in (0, 1)]
        + [Run("mf", (100,)), Run("mf", (1, 1, 1, 1))],
        tmp_path,
    ).runs
    lines = config_table(runs).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    at = header.index(PREDICTED.header)
    assert header[at - 1].startswith("grad ratio at init")  # beside the measured one
    # keyed by (hidden layers, widths): equal widths show once, "4", "100" for 4 × 100
    cells = {tuple(c.strip() for c in ln.split("|")[1:3]): ln.split("|")[at + 1].strip()
             for ln in lines[2:]}  # fmt: skip
    assert cells == {("4", "100"): "116", ("1", "100"): "n/a", ("4", "1"): "n/a"}
    # beside it, the measured per-layer slope (mean over the seeds) and the predicted ln χ₁/2:
    # the synthetic sigmoid net shrinks 5-fold per layer, −ln 5 = −1.61; ln(0.04196)/2 = −1.59
    assert header[at + 1] == SLOPE.header
    slopes = {tuple(c.strip() for c in ln.split("|")[1:3]): ln.split("|")[at + 2].strip()
              for ln in lines[2:]}  # fmt: skip
    assert slopes == {("4", "100"): "-1.61 (-1.59)", ("1", "100"): "n/a", ("4", "1"): "-1.61 (n/a)"}
    # an experiment with no prediction anywhere has no such column
    alone = synthetic.sweep([Run("one_path", (1, 1, 1, 1))], tmp_path / "alone").runs
    assert PREDICTED.header not in config_table(alone)


def test_a_run_without_a_known_init_or_bias_init_gets_no_prediction():
    """An old or hand-written run.json may lack a setting: null columns, not an error."""
    base = {"activation": "sigmoid", "widths": "100-100", "init": "scaled_normal",
            "bias_init": "normal", "weight_scale": 1.0}  # fmt: skip
    assert theory.prediction(base)["chi1_predicted"] is not None
    for key in ("init", "bias_init"):
        assert theory.prediction({**base, key: None}) == dict.fromkeys(theory.COLUMNS)


@pytest.mark.parametrize("sigma_w2", [0.5, 1.76, 3.0])
def test_weight_variance_setting_is_what_scaled_normal_draws(sigma_w2: float) -> None:
    """weight_variance σ_w²: N(0, σ_w²/fan_in), at any widths, in runs.parquet as given."""
    net = DenseNet([8, WIDE, WIDE // 2, 2], "tanh", "scaled_normal", seed=4,
                   weight_variance=sigma_w2)  # fmt: skip
    for kernel in net.kernels[:2]:  # 8 → 1000 and 1000 → 500: fan_in, whatever fan_out
        measured, se = empirical_sigma_w2(kernel.numpy())
        assert abs(measured - sigma_w2) < 5 * se, (measured, sigma_w2, se)
    s = settings(widths=f"{WIDE}-{WIDE // 2}", weight_variance=sigma_w2)
    assert theory.weight_variance(s) == sigma_w2 and theory.not_applicable(s) is None
    # σ_w² = 1 is scaled_normal itself, draw for draw
    plain = DenseNet([8, 30, 2], "tanh", "scaled_normal", seed=4)
    one = DenseNet([8, 30, 2], "tanh", "scaled_normal", seed=4, weight_variance=1.0)
    pairs = zip(plain.params, one.params, strict=True)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)


@pytest.mark.parametrize("sigma_w2", [None, 2.5])
def test_orthogonal_is_gain_times_orthogonal(sigma_w2: float | None) -> None:
    """Square: W Wᵀ = g² I (g² = σ_w², 1 unset); narrowing: orthonormal rows × g, σ_w² = g²;
    widening: orthonormal columns × g, σ_w² = g² fan_in / fan_out (theory's "fan_max")."""
    g2 = 1.0 if sigma_w2 is None else sigma_w2
    net = DenseNet([8, 300, 300, 120, 240, 2], "tanh", "orthogonal", seed=3,
                   weight_variance=sigma_w2)  # fmt: skip
    square, narrow, wide = (k.numpy().astype(np.float64) for k in net.kernels[1:4])
    np.testing.assert_allclose(square @ square.T, g2 * np.eye(300), atol=1e-5 * g2)
    np.testing.assert_allclose(narrow @ narrow.T, g2 * np.eye(120), atol=1e-5 * g2)  # 120 rows
    np.testing.assert_allclose(wide.T @ wide, g2 * np.eye(120), atol=1e-5 * g2)  # 120 columns
    for w, (fan_in, fan_out) in ((square, (300, 300)), (narrow, (300, 120)), (wide, (120, 240))):
        measured = fan_in * (w**2).mean()  # exact for an orthogonal matrix: no sampling error
        expected = theory.layer_weight_variance("orthogonal", fan_in, fan_out, variance=sigma_w2)
        assert measured == pytest.approx(expected, rel=1e-5), (fan_in, fan_out)
    assert theory.weight_variance(settings(init="orthogonal", weight_variance=sigma_w2)) == g2
    assert theory.weight_variance(settings(init="orthogonal", widths="500-300-150-50")) == 1.0
    # a widening layer among the hidden ones: σ_w² differs, no prediction; the setting stays
    uneven = settings(init="orthogonal", widths="100-200-200", weight_variance=sigma_w2)
    assert "widening hidden layer" in (theory.not_applicable(uneven) or "")
    assert theory.prediction(uneven) == dict.fromkeys(theory.COLUMNS)
    assert theory.weight_variance(uneven) == sigma_w2


@pytest.mark.parametrize("sigma_b2", [0.05, 0.0, 2.0])
def test_bias_variance_setting_is_what_the_net_draws(sigma_b2: float) -> None:
    net = DenseNet([8, 20_000, 2], "tanh", "scaled_normal", seed=6, bias_variance=sigma_b2)
    b = net.biases[0].numpy().astype(np.float64)
    if sigma_b2 == 0:
        assert not b.any()
    else:
        se = (b**2).std() / np.sqrt(b.size)
        assert abs((b**2).mean() - sigma_b2) < 5 * se, ((b**2).mean(), sigma_b2, se)
    assert theory.bias_variance(settings(bias_variance=sigma_b2)) == sigma_b2


def test_runs_parquet_reads_the_settings_when_given(tmp_path) -> None:
    """weight_variance and bias_variance: one column each, the setting when given (even
    where the theory does not apply), else the init's own; chi1 at the given (σ_w², σ_b²)."""
    edge = {"weight_variance": 1.76, "bias_variance": 0.05}
    runs = [
        Run("mf", (100, 100, 100), "tanh", settings=edge),
        Run("mf", (100, 100, 100), "tanh"),
        Run("mf", (100, 100, 100), "tanh", "orthogonal", settings={"weight_variance": 2.0}),
        Run("mf", (100, 200, 200), "tanh", "orthogonal", settings={"weight_variance": 2.0}),
        Run("mf", (100, 100, 100), "tanh", settings={**edge, "normalization": "batch_norm"}),
    ]
    table = synthetic.sweep(runs, tmp_path).runs
    got = table[["weight_variance", "bias_variance"]].fillna(-1).values.tolist()
    # unset where the theory does not apply (a widening orthogonal layer): null, as before
    assert got == [[1.76, 0.05], [1.0, 1.0], [2.0, 1.0], [2.0, -1], [1.76, 0.05]]
    chi = table["chi1_predicted"].tolist()
    assert chi[:3] == pytest.approx([float(meanfield.chi_1("tanh", w, b)) for w, b in got[:3]])
    assert np.isnan(chi[3:]).all()  # widening orthogonal layer; batch norm
    assert table["config_id"].nunique() == 5
    # the unset run keeps the config_id it had before the settings existed
    plain = runs[1].config()
    assert "weight_variance" not in plain and table["config_id"].iloc[1] == synthetic.config_id(
        {k: v for k, v in synthetic.run_settings("mf", plain).items()
         if k not in ("weight_variance", "bias_variance")})  # fmt: skip


def test_grad_slope_init_is_numpy_polyfit_and_predicted_is_half_ln_chi1(tmp_path) -> None:
    """grad_slope_init: the least-squares slope of ln example_grad_rms at epoch 0 against the
    layers back from the last hidden layer (NumPy's polyfit on the traces, independently);
    the synthetic model's k-fold shrink per layer reads −ln k without noise.
    grad_slope_predicted = ln χ₁ / 2."""
    runs = [
        Run("mf", (100,) * 6, "tanh", shrink=1.5),
        Run("mf", (100,) * 5, noise=0.4, seed=3),
        Run("mf", (100, 100), "relu", "he_normal", noise=0.4),
        Run("mf", (100,)),
    ]
    out = synthetic.sweep(runs, tmp_path)
    table = out.runs.set_index("widths")
    t = out.traces
    for run in runs[:3]:
        rows = t[(t["run_id"] == run.run_id) & (t["source"] == "probe") & (t["param"] == "bias")
                 & (t["epoch"] == 0) & (t["layer"] <= run.depth)]  # fmt: skip
        expected = np.polyfit(
            run.depth - rows["layer"], np.log(rows["example_grad_rms"].astype(np.float64)), 1
        )[0]
        row = table.loc[synthetic.widths_string(run.widths)]
        assert row["grad_slope_init"] == pytest.approx(expected, rel=1e-9)
        chi = float(meanfield.chi_1(run.activation, row["weight_variance"], 1.0))
        assert row["grad_slope_predicted"] == pytest.approx(np.log(chi) / 2, rel=1e-12)
    assert table.loc["100-100-100-100-100-100", "grad_slope_init"] == pytest.approx(-np.log(1.5))
    assert table.loc["100-100-100-100-100", "grad_slope_init"] < 0  # vanishing: negative
    one = table.loc["100"]  # one hidden layer: no slope, none predicted
    assert np.isnan(one["grad_slope_init"]) and np.isnan(one["grad_slope_predicted"])


def test_traces_from_before_the_column_read_as_null(tmp_path) -> None:
    """A cached run trained before example_grad_rms existed is not retrained: its traces
    read with the column null and its runs.parquet slope null."""
    data = synthetic.make_run(Run("old", (50, 50, 50)))
    files = synthetic.write_run(data, tmp_path / "runs")
    old = data.traces.drop(columns="example_grad_rms")
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), files.traces)
    back = synthetic.aggregate_runs([files], tmp_path)
    # as every job reads a run's traces (gradsweep.io.read_run_traces)
    read = read_run_traces(files.traces)
    assert "example_grad_rms" not in back.traces
    assert read["example_grad_rms"].null_count == len(read)
    assert np.isnan(back.runs["grad_slope_init"].iloc[0])
    assert back.runs["grad_slope_predicted"].notna().all()  # the prediction needs no traces
