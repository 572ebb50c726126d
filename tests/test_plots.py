"""Figures from synthetic sweep tables shaped like docs/outputs.md (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from gradsweep import facets as F
from gradsweep import plotting
from gradsweep.plotting import data as D
from gradsweep.plotting import gradients, style
from gradsweep.plotting import sweep as sweep_figures
from gradsweep.settings import config_id

# Per-layer shrink factor of the probe bias gradient towards the input, at initialisation.
SHRINK = {
    ("sigmoid", "normal"): 4.0,
    ("sigmoid", "scaled_normal"): 4.0,
    ("sigmoid", "he_normal"): 2.5,
    ("tanh", "normal"): 0.7,
    ("tanh", "scaled_normal"): 1.5,
    ("tanh", "he_normal"): 1.1,
    ("relu", "normal"): 0.5,
    ("relu", "scaled_normal"): 1.4,
    ("relu", "he_normal"): 1.0,
}


def _run_name(depth: int, width: int, act: str, init: str, seed: int, extra: str = "") -> str:
    return f"d{depth}-w{'x'.join([str(width)] * depth)}-{act}-{init}-s{seed}{extra}"


def synthetic_sweep(
    *, steps_per_epoch: int = 400, trace_every: int = 2, epochs: int = 8, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """runs, traces, metrics for three experiments, one diverged run, one run without steps."""
    rng = np.random.default_rng(seed)
    specs: list[tuple[str, str, int, int, str, str, int, float, str]] = []
    for depth in (1, 2, 3, 4):
        specs.append(("vanishing", "mnist", depth, 30, "sigmoid", "scaled_normal", 0, 3.0, ""))
    for depth in (2, 5):
        for act in ("sigmoid", "tanh", "relu"):
            for init in ("normal", "scaled_normal", "he_normal"):
                for s in (0, 1):
                    specs.append(("activations", "fashion_mnist", depth, 64, act, init, s, 0.1, ""))
    for lr in (0.1, 1.0):
        specs.append(("lr", "mnist", 1, 16, "relu", "he_normal", 0, lr, f"-learning_rate{lr:g}"))

    runs, traces, metrics = [], [], []
    for exp, dataset, depth, width, act, init, s, lr, extra in specs:
        run = _run_name(depth, width, act, init, s, extra)
        run_id = f"{exp}/{run}"
        diverged = exp == "activations" and act == "relu" and init == "normal" and depth == 5
        no_steps = exp == "activations" and s == 1
        k = SHRINK[(act, init)]
        last_epoch = 3 if diverged else epochs
        # probe traces: epoch 0..last, layers 1..depth+1
        norms: dict[tuple[int, int], float] = {}
        for e in range(last_epoch + 1):
            # training softens the ratio a little (k -> k ** 0.7 by the end)
            k_e = k ** (1 - 0.3 * e / epochs)
            for layer in range(1, depth + 2):
                g = 0.05 * k_e ** -(depth - min(layer, depth)) * rng.lognormal(0, 0.1)
                if diverged and e == last_epoch:
                    g = np.inf if layer == 1 else np.nan
                norms[(e, layer)] = g
                for param, scale in (("bias", 1.0), ("kernel", 3.0)):
                    traces.append(
                        (run_id, e, e * steps_per_epoch, layer, param, g * scale, "probe", exp)
                    )
        if not no_steps:
            for step in range(1, last_epoch * steps_per_epoch + 1, trace_every):
                e = (step - 1) // steps_per_epoch + 1
                for layer in range(1, depth + 2):
                    base = norms[(e - 1, layer)]
                    g = base * rng.lognormal(0.4, 0.5)
                    traces.append((run_id, e, step, layer, "bias", g, "step", exp))
        best = (
            np.nan
            if diverged
            else float(np.clip(0.97 - 0.08 * (k > 2) * depth / 4 + rng.normal(0, 0.005), 0, 1))
        )
        for e in range(last_epoch + 1):
            acc = np.nan if diverged and e == last_epoch else best * (1 - 0.5 ** (e + 1))
            metrics.append(
                (run_id, e, e * steps_per_epoch, 0.5, acc, 0.5, acc, 0.5, acc, 3.0 * e, exp)
            )
        ratio_init = norms[(0, depth)] / norms[(0, 1)]
        ratio_final = norms[(last_epoch, depth)] / norms[(last_epoch, 1)]
        settings = {
            "experiment": exp,
            "dataset": dataset,
            "depth": depth,
            "widths": "-".join([str(width)] * depth),
            "activation": act,
            "init": init,
            "epochs": epochs,
            "learning_rate": lr,
            "batch_size": 10,
        }
        runs.append({
            "run_id": run_id, "run": run, "config_id": config_id(settings), **settings,
            "seed": s,
            "status": "diverged" if diverged else "ok", "best_val_acc": best,
            "best_epoch": np.nan if diverged else epochs, "test_acc": best - 0.003,
            "final_test_acc": best - 0.004, "wall_s": 60.0,
            "grad_ratio_init": ratio_init, "grad_ratio_final": ratio_final,
        })  # fmt: skip
    tcols = ["run_id", "epoch", "step", "layer", "param", "grad_norm", "source", "experiment"]
    mcols = ["run_id", "epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc",
             "test_loss", "test_acc", "wall_s", "experiment"]  # fmt: skip
    tr = pd.DataFrame(traces, columns=tcols).astype(
        {"epoch": "int32", "step": "int64", "layer": "int16", "grad_norm": "float64"}
    )
    return pd.DataFrame(runs), tr, pd.DataFrame(metrics, columns=mcols)


@pytest.fixture(scope="module")
def sweep() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return synthetic_sweep()


def _check_png(path: Path, min_w: int = 600, min_h: int = 300) -> np.ndarray:
    assert path.exists() and path.stat().st_size > 10_000, "PNG missing or nearly empty"
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, (w, h)
    # not a blank canvas: some pixels must be clearly non-white
    assert (img[..., :3] < 0.5).mean() > 0.002
    return img


def _expected_px(fig_inches: tuple[float, float]) -> tuple[int, int]:
    return int(fig_inches[0] * style.DPI), int(fig_inches[1] * style.DPI)  # Agg truncates


def test_gradient_norms_png(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    out = tmp_path / "sub" / "gradients.png"
    drawn = plotting.plot_gradient_norms(traces, runs, out, "vanishing")
    img = _check_png(out)
    # 4 configs (depth 1-4) -> one row of 4 panels: the figure is wide, not tall
    w_in, h_in = gradients.figure_size(1, 4)
    assert img.shape[1] == _expected_px((w_in, h_in))[0]
    assert img.shape[0] == _expected_px((w_in, h_in))[1]
    assert len(drawn) == 4 and drawn["drawn"].all()
    assert plt.get_fignums() == []  # no figure left open


def test_gradient_norms_panel_per_config_and_diverged(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    act = runs[runs["experiment"] == "activations"]
    out = tmp_path / "g.png"
    drawn = plotting.plot_gradient_norms(traces, runs, out, "activations")
    img = _check_png(out)
    # 36 runs = 18 configs x 2 seeds: one panel per config, every config drawn
    assert set(drawn["config_id"]) == set(act["config_id"]) and len(drawn) == 18
    assert (drawn["n_seeds"] == 2).all()
    rows = -(-18 // 4)
    assert img.shape[0] == _expected_px(gradients.figure_size(rows, 4))[1]


def test_config_title_is_readable() -> None:
    cfg = {"depth": 4, "widths": "100-100-100-100", "width": "100", "activation": "sigmoid",
           "init": "scaled_normal", "learning_rate": 0.1}  # fmt: skip
    title = D.config_title(cfg, ["activation", "depth", "learning_rate"], 5)
    assert title == "sigmoid · 4 hidden layers\nη 0.1 · n = 5 seeds"
    assert D.config_title(cfg, [], 1).endswith("n = 1 seed")
    assert F.widths_label("500-300-150-50") == "500-300-150-50"
    assert F.widths_label("100-100-100") == "3 × 100"


def test_step_traces_png_and_smoothing(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    out = tmp_path / "steps.png"
    plotting.plot_step_traces(traces, runs, out, "vanishing")
    _check_png(out)
    d = traces[(traces["source"] == "step") & (traces["run_id"] == runs["run_id"].iloc[0])]
    d = d[(d["layer"] == 1) & (d["param"] == "bias")]
    assert len(d) > gradients.MAX_STEP_POINTS
    sm, window = plotting.smooth_steps(d)
    assert len(sm) <= gradients.MAX_STEP_POINTS and window > 1
    # the median removes the heavy multiplicative noise: smoother than the raw trace
    assert np.diff(np.log(sm["grad_norm"])).std() < np.diff(np.log(d["grad_norm"])).std() / 2
    # the kept rows carry pandas' centred rolling median over the stated window (the oracle)
    full = d["grad_norm"].rolling(window, center=True, min_periods=1).median()
    np.testing.assert_allclose(sm["grad_norm"], full.loc[sm.index], rtol=1e-12)
    assert sm.index.equals(d.index[:: (window - 1) // 2])


def test_step_traces_without_any_steps(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    out = tmp_path / "nosteps.png"
    plotting.plot_step_traces(traces[traces["source"] == "probe"], runs, out, "vanishing")
    _check_png(out)


def test_activation_init_grid_png(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    out = tmp_path / "grid.png"
    plotting.plot_activation_init_grid(traces, runs, out)
    img = _check_png(out, min_w=1000, min_h=900)  # 3 x 3 panels
    assert img.shape[0] > img.shape[1] * 0.6


def test_activation_init_grid_data_shows_vanishing(sweep) -> None:
    runs, traces, _ = sweep
    df = sweep_figures.init_vs_final(traces, runs)
    d = df[(df["run_id"] == "vanishing/d4-w30x30x30x30-sigmoid-scaled_normal-s0")
           & (df["when"] == "at initialisation")].set_index("layer")["grad_norm"]  # fmt: skip
    assert list(d.index) == [1, 2, 3, 4]  # output layer (5) excluded
    assert d[4] / d[1] > 30
    # diverged run: its inf/nan last epoch is dropped, init values kept
    div = df[df["run_id"].str.contains("d5-w64x64x64x64x64-relu-normal")]
    assert np.isfinite(div["grad_norm"]).all() and (div["when"] == "at initialisation").any()


def test_accuracy_vs_depth_png(sweep, tmp_path: Path) -> None:
    runs, _, _ = sweep
    out = tmp_path / "acc.png"
    plotting.plot_accuracy_vs_depth(runs, out)
    _check_png(out)


def test_ratio_heatmap_png(sweep, tmp_path: Path) -> None:
    runs, _, _ = sweep
    out = tmp_path / "heat.png"
    plotting.plot_ratio_heatmap(runs, out)
    _check_png(out)


def test_single_run_single_layer(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    one = runs[runs["run_id"] == "lr/d1-w16-relu-he_normal-s0-learning_rate0.1"]
    assert len(one) == 1 and float(one["grad_ratio_init"].iloc[0]) == pytest.approx(1.0)
    tr = traces[traces["run_id"].isin(one["run_id"])]
    plotting.plot_gradient_norms(tr, one, tmp_path / "a.png", "lr")
    plotting.plot_step_traces(tr, one, tmp_path / "b.png", "lr")
    plotting.plot_activation_init_grid(tr, one, tmp_path / "c.png")
    plotting.plot_accuracy_vs_depth(one, tmp_path / "d.png")
    plotting.plot_ratio_heatmap(one, tmp_path / "e.png")
    for name in "abcde":
        _check_png(tmp_path / f"{name}.png", min_w=300, min_h=300)
    assert plt.get_fignums() == []


def test_all_diverged_nan_inf(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    bad = runs[runs["run_id"].str.startswith("vanishing/")].assign(
        status="diverged", best_val_acc=np.nan, grad_ratio_init=np.inf, grad_ratio_final=np.nan
    )
    tr = traces[traces["run_id"].isin(bad["run_id"])].assign(grad_norm=np.nan)
    plotting.plot_gradient_norms(tr, bad, tmp_path / "a.png", "vanishing")
    plotting.plot_accuracy_vs_depth(bad, tmp_path / "b.png")
    plotting.plot_ratio_heatmap(bad, tmp_path / "c.png")
    plotting.plot_activation_init_grid(tr, bad, tmp_path / "d.png")
    for name in "abcd":
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000


def test_read_traces_filters(sweep, tmp_path: Path) -> None:
    _, traces, _ = sweep
    path = tmp_path / "traces.parquet"
    traces.to_parquet(path)
    got = plotting.read_traces(path, experiment="vanishing", source="probe")
    assert set(got["source"]) == {"probe"} and set(got["param"]) == {"bias"}
    assert got["run_id"].str.startswith("vanishing/").all() and len(got) > 0
    assert "experiment" not in got.columns
    # a per-run file without the experiment column is filtered by run_id prefix
    per_run = tmp_path / "run.parquet"
    traces.drop(columns="experiment").to_parquet(per_run)
    got2 = plotting.read_traces([per_run], experiment="lr", source="step")
    assert len(got2) > 0 and got2["run_id"].str.startswith("lr/").all()


# --------------------------------------------------------------------- remedies (issue 15)


@pytest.fixture(scope="module")
def remedies(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The remedies experiment in small: 4 × 8 sigmoid across optimizer × normalization ×
    residual, 2 seeds each, plus the ReLU + He baseline (runs, traces, metrics)."""
    from synthetic_aggregate import synthetic_aggregate

    root = tmp_path_factory.mktemp("remedies")
    common = {"depth": (4,), "width": (8,), "seeds": (0, 1), "steps_per_epoch": 5,
              "experiment": "remedies"}  # fmt: skip
    grid = synthetic_aggregate(
        root / "grid", activation=("sigmoid",), init=("scaled_normal",), **common,
        remedies={"optimizer": ["sgd", "adam"], "normalization": ["none", "batch_norm"],
                  "residual": [False, True]},
    )  # fmt: skip
    base = synthetic_aggregate(
        root / "base", activation=("relu",), init=("he_normal",), rng_seed=1, **common
    )
    return tuple(  # type: ignore[return-value]
        pd.concat([pd.read_parquet(p[name]) for p in (grid, base)], ignore_index=True)
        for name in ("runs", "traces", "metrics")
    )


def test_update_sizes_png_same_panels_as_gradients(remedies, tmp_path: Path) -> None:
    runs, traces, _ = remedies
    probe = traces[traces["source"] == "probe"]
    shown = plotting.plot_update_sizes(probe, runs, tmp_path / "updates.png", "remedies")
    grads = plotting.plot_gradient_norms(probe, runs, tmp_path / "gradients.png", "remedies")
    assert shown["config_id"].tolist() == grads["config_id"].tolist()
    assert len(shown) == 9 and shown["drawn"].all() and (shown["n_seeds"] == 2).all()
    assert (
        _check_png(tmp_path / "updates.png").shape == mpimg.imread(tmp_path / "gradients.png").shape
    )
    # traces from before update sizes were recorded: every panel says so, none is drawn
    old = probe.drop(columns="relative_update")
    none = plotting.plot_update_sizes(old, runs, tmp_path / "old.png", "remedies")
    assert len(none) == 9 and not none["drawn"].any()


def test_remedies_heatmap_numbers_against_numpy(remedies, tmp_path: Path) -> None:
    from PIL import Image
    from scipy import stats as sps

    runs, _, _ = remedies
    table = plotting.plot_remedies_heatmap(runs, tmp_path / "remedies.png", "remedies")
    with Image.open(tmp_path / "remedies.png") as img:
        assert int(img.info["Panels"]) == 2 and img.height <= D.MAX_HEIGHT_PX
    _check_png(tmp_path / "remedies.png")
    assert len(table) == 9 and table["label"].is_unique and (table["n"] == 2).all()
    assert table["label"].iloc[0] == "sigmoid · scaled_normal · SGD · no norm. · no shortcut"
    assert table["label"].iloc[-1].startswith("relu · he_normal")  # the baseline last
    for _, row in table.iterrows():
        members = runs[runs["config_id"] == row["config_id"]]
        for col in ("grad_ratio_init", "grad_ratio_final", "update_ratio_init",
                    "update_ratio_final"):  # fmt: skip
            v = members[col].to_numpy(dtype=float)
            assert row[col] == pytest.approx(sps.gmean(v), rel=1e-9)
            assert (row[f"{col}_min"], row[f"{col}_max"]) == (v.min(), v.max())
        assert row["test_acc"] == pytest.approx(100 * members["test_acc"].mean())
    adam = table[table["label"].str.contains("Adam")]
    sgd = table[table["label"].str.contains("SGD") & table["label"].str.startswith("sigmoid")]
    # the synthetic Adam evens out the steps: its update ratios are near 1, SGD's are not
    assert adam["update_ratio_final"].between(0.5, 2).all()
    assert (sgd["update_ratio_init"] > 2).all()


def test_bn_distribution_drift_against_numpy(remedies, tmp_path: Path) -> None:
    runs, traces, metrics = remedies
    bn = runs[runs["optimizer"] == "sgd"]
    bn = bn[~bn["residual"].astype(bool) & (bn["activation"] == "sigmoid")]
    assert set(bn["normalization"]) == {"none", "batch_norm"}
    table = plotting.plot_bn_distribution(metrics, traces, bn, tmp_path / "bn.png", "remedies")
    _check_png(tmp_path / "bn.png")
    assert table["label"].tolist() == ["no norm.", "batch norm"]
    for _, row in table.iterrows():
        ids = bn.loc[bn["config_id"] == row["config_id"], "run_id"]
        last = traces[(traces["source"] == "probe") & traces["run_id"].isin(ids)
                      & (traces["layer"] == 4) & (traces["param"] == "bias")]  # fmt: skip
        for col in ("z_p15", "z_p50", "z_p85"):
            drift = [np.ptp(d[col].to_numpy()) for _, d in last.groupby("run_id")]
            assert row[f"{col}_drift"] == pytest.approx(np.mean(drift))
        per_run = [max(np.ptp(d[c].to_numpy()) for c in ("z_p15", "z_p50", "z_p85"))
                   for _, d in last.groupby("run_id")]  # fmt: skip
        assert row["z_drift"] == pytest.approx(np.mean(per_run))
        end = metrics[metrics["run_id"].isin(ids)]
        end = end[end["step"] == end["step"].max()]
        assert row["final_test_acc"] == pytest.approx(100 * end["test_acc"].mean())
    drift = table.set_index("label")["z_drift"]
    assert drift["no norm."] > 0.1 > drift["batch norm"]  # as the synthetic traces are made


def test_ratio_heatmap_rows_follow_the_remedy_axes(remedies, tmp_path: Path) -> None:
    runs, _, _ = remedies
    cells = plotting.plot_ratio_heatmap(runs, tmp_path / "heatmap.png")
    rows = list(pd.unique(cells.loc[cells["when"] == "at initialisation", "row"]))
    assert rows == [
        f"{opt} · {norm} · {res}"
        for opt in ("SGD", "Adam")
        for norm in ("no norm.", "batch norm")
        for res in ("no shortcut", "residual")
    ]
