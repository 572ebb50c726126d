"""Figures from synthetic sweep tables shaped like docs/outputs.md (no TensorFlow needed)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from synthetic import Run, check_png, edge_of_chaos_sweep, grid_runs, shrink
from synthetic import sweep as build

from gradsweep import facets as F
from gradsweep import plotting
from gradsweep.plotting import data as D
from gradsweep.plotting import diagnostics, gradients, style
from gradsweep.plotting import sweep as sweep_figures

pytestmark = pytest.mark.usefixtures("no_figure_left_open")


def plot_runs(*, steps_per_epoch: int = 400, trace_every: int = 2, epochs: int = 8) -> list[Run]:
    """Three experiments: ``vanishing`` (sigmoid, 1-4 hidden layers), ``activations`` (3
    activations x 3 inits x depth 2 and 5 x 2 seeds; the deep ReLU with ``normal`` init
    diverges at epoch 3, the seeds 1 were traced without steps) and ``lr`` (two learning
    rates of one ReLU net)."""
    common: dict[str, Any] = {"epochs": epochs, "steps_per_epoch": steps_per_epoch,
                              "trace_every": trace_every, "noise": 0.1}  # fmt: skip
    runs = [Run("vanishing", (30,) * d, "sigmoid", "scaled_normal", dataset="mnist", **common)
            for d in (1, 2, 3, 4)]  # fmt: skip
    for depth, act, init, seed in itertools.product(
        (2, 5), ("sigmoid", "tanh", "relu"), ("normal", "scaled_normal", "he_normal"), (0, 1)
    ):
        diverged = (depth, act, init) == (5, "relu", "normal")
        k = shrink(act, init)
        runs.append(Run("activations", (64,) * depth, act, init, seed, "fashion_mnist",
                        steps=seed == 0, diverge_at=3 if diverged else None,
                        acc=0.97 - 0.08 * (k > 2) * depth / 4, **common))  # fmt: skip
    runs += [Run("lr", (16,), "relu", "he_normal", dataset="mnist",
                 settings={"learning_rate": lr}, **common) for lr in (0.1, 1.0)]  # fmt: skip
    return runs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    built = build(plot_runs(), tmp_path_factory.mktemp("sweep"))
    return built.runs, built.traces, built.metrics


def _expected_px(fig_inches: tuple[float, float]) -> tuple[int, int]:
    return int(fig_inches[0] * style.DPI), int(fig_inches[1] * style.DPI)  # Agg truncates


def test_gradient_norms_png(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    out = tmp_path / "sub" / "gradients.png"
    drawn = plotting.plot_gradient_norms(traces, runs, out, "vanishing")
    img = check_png(out)
    # 4 configs (depth 1-4) -> one row of 4 panels: the figure is wide, not tall
    w_in, h_in = gradients.figure_size(1, 4)
    assert img.shape[1] == _expected_px((w_in, h_in))[0]
    assert img.shape[0] == _expected_px((w_in, h_in))[1]
    assert len(drawn) == 4 and drawn["drawn"].all()


def test_gradient_norms_panel_per_config_and_diverged(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    act = runs[runs["experiment"] == "activations"]
    out = tmp_path / "g.png"
    drawn = plotting.plot_gradient_norms(traces, runs, out, "activations")
    img = check_png(out)
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
    check_png(out)
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
    check_png(out)


def test_activation_init_grid_png(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    out = tmp_path / "grid.png"
    plotting.plot_activation_init_grid(traces, runs, out)
    img = check_png(out, min_w=1000, min_h=900)  # 3 x 3 panels
    assert img.shape[0] > img.shape[1] * 0.6


def test_activation_init_grid_data_shows_vanishing(sweep) -> None:
    runs, traces, _ = sweep
    df = sweep_figures.init_vs_final(traces, runs)
    d = df[(df["run_id"] == "vanishing/d4-w30-sigmoid-scaled_normal-s0")
           & (df["when"] == "at initialisation")].set_index("layer")["grad_norm"]  # fmt: skip
    assert list(d.index) == [1, 2, 3, 4]  # output layer (5) excluded
    assert d[4] / d[1] > 30
    # diverged run: its inf/nan last epoch is dropped, init values kept
    div = df[df["run_id"].str.contains("d5-w64-relu-normal")]
    assert np.isfinite(div["grad_norm"]).all() and (div["when"] == "at initialisation").any()


def test_accuracy_vs_depth_png(sweep, tmp_path: Path) -> None:
    runs, _, _ = sweep
    out = tmp_path / "acc.png"
    plotting.plot_accuracy_vs_depth(runs, out)
    check_png(out)


def test_ratio_heatmap_png(sweep, tmp_path: Path) -> None:
    runs, _, _ = sweep
    out = tmp_path / "heat.png"
    plotting.plot_ratio_heatmap(runs, out)
    check_png(out)


def test_single_run_single_layer(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    one = runs[runs["run_id"] == "lr/d1-w16-relu-he_normal-s0-learning_rate0.1"]
    assert len(one) == 1 and np.isnan(one["grad_ratio_init"].iloc[0])  # one layer: no ratio
    tr = traces[traces["run_id"].isin(one["run_id"])]
    plotting.plot_gradient_norms(tr, one, tmp_path / "a.png", "lr")
    plotting.plot_step_traces(tr, one, tmp_path / "b.png", "lr")
    plotting.plot_activation_init_grid(tr, one, tmp_path / "c.png")
    plotting.plot_accuracy_vs_depth(one, tmp_path / "d.png")
    cells = plotting.plot_ratio_heatmap(one, tmp_path / "e.png")
    assert cells["text"].tolist() == ["n/a\none layer"] * 2 and cells["gmean"].isna().all()
    for name in "abcde":
        check_png(tmp_path / f"{name}.png", min_w=300, min_h=300)


def test_one_hidden_layer_is_never_called_healthy(sweep) -> None:
    """``vanishing`` has 1-4 hidden layers of one seed each: the one-layer net's panel says it
    has no ratio, and the diagnostics figure does not pick it as the lowest ratio at init
    (it would be, at r = 1, if it had one)."""
    runs, _, _ = sweep
    van = runs[runs["experiment"] == "vanishing"]
    one = van[van["depth"] == 1]
    text = gradients._escape_text(one)
    assert text == "grad ratio n/a: one hidden layer" and "healthy" not in text
    assert gradients._escape_text(van[van["depth"] == 2]).startswith(("healthy", "never"))
    ids, why = diagnostics.pick_configs(van)
    reasons = dict(zip(ids, [w.split(": ", 1)[1] for w in why.split("; ")], strict=True))
    one_id = one["config_id"].iloc[0]
    assert reasons.get(one_id) not in ("lowest ratio at init", "highest ratio at init")
    lowest = next(c for c, w in reasons.items() if w == "lowest ratio at init")
    ratios = van.set_index("config_id")["grad_ratio_init"]
    assert lowest == ratios.dropna().idxmin() and van.loc[van["config_id"] == lowest,
                                                          "depth"].item() == 2  # fmt: skip


def test_seed_legend_only_with_several_seeds(sweep) -> None:
    runs, _, _ = sweep
    single = runs[runs["experiment"] == "vanishing"]
    assert not style.several_seeds(single) and style.several_seeds(runs)
    assert [label for _, label in style.seed_legend(False)] == ["one seed per config"]
    assert "min–max over seeds" in [label for _, label in style.seed_legend(True)]


def test_all_diverged_nan_inf(sweep, tmp_path: Path) -> None:
    runs, traces, _ = sweep
    bad = runs[runs["run_id"].str.startswith("vanishing/")].assign(
        status="diverged", best_val_acc=np.nan, grad_ratio_init=np.inf, grad_ratio_final=np.nan
    )
    tr = traces[traces["run_id"].isin(bad["run_id"])].assign(grad_norm=np.nan)
    # every config keeps its panel with its seeds, but no line: no norm is finite
    drawn = plotting.plot_gradient_norms(tr, bad, tmp_path / "a.png", "vanishing")
    seeds = bad.groupby("config_id").size()
    assert drawn.set_index("config_id")["n_seeds"].sort_index().equals(seeds.sort_index())
    assert not drawn["drawn"].any()
    assert plotting.plot_accuracy_vs_depth(bad, tmp_path / "b.png").empty  # no finite accuracy
    # one cell per depth and time; the inf ratio at init shows as its min-max, no mean
    cells = plotting.plot_ratio_heatmap(bad, tmp_path / "c.png")
    for when, col in (("at initialisation", "grad_ratio_init"),
                      ("after the last epoch", "grad_ratio_final")):  # fmt: skip
        got = cells[cells["when"] == when]
        assert got["row"].tolist() == [f"{d} hidden layer{'s' * (d > 1)}" for d in bad["depth"]]
        assert (got["n"] == 1).all() and got["gmean"].isna().all()
        np.testing.assert_array_equal(got["max"], bad[col])
    assert plotting.plot_activation_init_grid(tr, bad, tmp_path / "d.png").empty
    for name in "abcd":
        assert mpimg.imread(tmp_path / f"{name}.png").ndim == 3, name


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


# --------------------------------------------------------------------- learning curves


@pytest.fixture(scope="module")
def curves(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Depth 1 and 6 × sigmoid and ReLU × 3 seeds, 8 epochs: the deep sigmoid's seed 1 never
    learns (grid_runs), the shallow ReLU's seed 2 diverges at epoch 5 (runs, traces, metrics)."""
    grid = grid_runs(depth=(1, 6), width=(16,), activation=("sigmoid", "relu"),
                     init=("scaled_normal",), seeds=(0, 1, 2), steps_per_epoch=2, epochs=8,
                     experiment="curves")  # fmt: skip
    grid = [replace(r, diverge_at=5) if (r.depth, r.activation, r.seed) == (1, "relu", 2) else r
            for r in grid]  # fmt: skip
    built = build(grid, tmp_path_factory.mktemp("curves"))
    return built.runs, built.traces, built.metrics


def test_learning_curves_against_pandas(curves, tmp_path: Path) -> None:
    runs, traces, metrics = curves
    out = tmp_path / "learning_curves.png"
    bands = plotting.plot_learning_curves(metrics, runs, out, "curves")
    check_png(out)
    with Image.open(out) as img:
        assert int(img.info["Panels"]) == 4  # one per config: the loss axes are no panels
    # the oracle: the seeds whose best validation accuracy reached twice chance (10 classes)
    learned = runs.loc[runs["best_val_acc"] >= 0.2, ["run_id", "config_id"]]
    assert len(learned) == len(runs) - 1  # the deep sigmoid's seed 1
    joined = metrics.merge(learned, on="run_id")
    for metric in ("val_acc", "train_loss"):
        want = (joined.dropna(subset=[metric]).groupby(["config_id", "epoch"])[metric]
                .agg(["mean", "min", "max", "count"]))  # fmt: skip
        got = bands[bands["metric"] == metric].set_index(["config_id", "epoch"]).sort_index()
        assert got.index.equals(want.index)
        np.testing.assert_allclose(got[["mean", "lo", "hi"]], want[["mean", "min", "max"]])
        np.testing.assert_array_equal(got["n"], want["count"])
    n = bands[bands["metric"] == "val_acc"].pivot(index="epoch", columns="config_id", values="n")
    stuck = runs.loc[(runs["depth"] == 6) & (runs["activation"] == "sigmoid"), "config_id"]
    diverged = runs.loc[runs["status"] == "diverged", "config_id"]
    assert (n[stuck.iloc[0]] == 2).all()  # 2 of 3 seeds learned
    # the diverged seed is averaged until its last finite epoch (4): NaN from epoch 5
    assert n[diverged.iloc[0]].tolist() == [3] * 5 + [2] * 4
    # the panels of gradients.png, in its order
    grads = plotting.plot_gradient_norms(traces, runs, tmp_path / "g.png", "curves")
    assert bands["config_id"].unique().tolist() == grads["config_id"].tolist()
    assert check_png(out).shape == mpimg.imread(tmp_path / "g.png").shape


def test_learning_curves_one_seed_that_never_learned(curves, tmp_path: Path) -> None:
    """A config whose only seed never learned keeps its panel (a thin line, no mean)."""
    runs, _, metrics = curves
    one = runs[runs["run_id"] == "curves/d6-w16-sigmoid-scaled_normal-s1"]
    assert len(one) == 1 and one["best_val_acc"].iloc[0] < 0.2
    bands = plotting.plot_learning_curves(metrics, one, tmp_path / "one.png", "curves")
    assert bands.empty
    check_png(tmp_path / "one.png", min_w=300)
    rows = plotting.curves.curve_table(metrics, one)
    assert not rows["learned"].any() and len(rows) == 2 * 9  # two metrics, epochs 0-8


# --------------------------------------------------------------------- remedies (issue 15)


@pytest.fixture(scope="module")
def remedies(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The remedies experiment in small: 4 × 8 sigmoid across optimizer × normalization ×
    residual, 2 seeds each, plus the ReLU + He baseline (runs, traces, metrics)."""
    common = {"depth": (4,), "width": (8,), "seeds": (0, 1), "steps_per_epoch": 5,
              "experiment": "remedies"}  # fmt: skip
    grid = grid_runs(
        activation=("sigmoid",), init=("scaled_normal",), **common,
        remedies={"optimizer": ["sgd", "adam"], "normalization": ["none", "batch_norm"],
                  "residual": [False, True]},
    )  # fmt: skip
    base = grid_runs(activation=("relu",), init=("he_normal",), rng_seed=1, **common)
    built = build(grid + base, tmp_path_factory.mktemp("remedies"))
    return built.runs, built.traces, built.metrics


def test_update_sizes_png_same_panels_as_gradients(remedies, tmp_path: Path) -> None:
    runs, traces, _ = remedies
    probe = traces[traces["source"] == "probe"]
    shown = plotting.plot_update_sizes(probe, runs, tmp_path / "updates.png", "remedies")
    grads = plotting.plot_gradient_norms(probe, runs, tmp_path / "gradients.png", "remedies")
    assert shown["config_id"].tolist() == grads["config_id"].tolist()
    assert len(shown) == 9 and shown["drawn"].all() and (shown["n_seeds"] == 2).all()
    assert (
        check_png(tmp_path / "updates.png").shape == mpimg.imread(tmp_path / "gradients.png").shape
    )
    # traces from before update sizes were recorded: every panel says so, none is drawn
    old = probe.drop(columns="relative_update")
    none = plotting.plot_update_sizes(old, runs, tmp_path / "old.png", "remedies")
    assert len(none) == 9 and not none["drawn"].any()


def test_updates_figure_draws_the_gradient_and_decay_parts_apart(remedies, tmp_path: Path) -> None:
    """Solid: the gradient's part ``grad_step_norm`` ÷ ‖W_e‖, dotted: the weight decay's
    ``decay_norm`` ÷ ‖W_e‖, where ‖W_e‖ = ``update_norm`` ÷ ``relative_update``; a run traced
    before the split keeps its whole update as the solid line and no dotted one, a run without
    weight decay (decay part 0) no dotted one."""
    runs, traces, _ = remedies
    probe = traces[traces["source"] == "probe"].copy()
    rng = np.random.default_rng(3)
    probe["decay_norm"] = probe["update_norm"] * rng.uniform(0.05, 0.95, len(probe))
    probe["grad_step_norm"] = probe["update_norm"] * rng.uniform(0.05, 0.95, len(probe))
    old_run, no_decay = runs["run_id"].iloc[0], runs["run_id"].iloc[1]
    probe.loc[probe["run_id"] == old_run, ["decay_norm", "grad_step_norm"]] = np.nan
    probe.loc[probe["run_id"] == no_decay, "decay_norm"] = 0.0

    rows = D.hidden_rows(probe, runs, "probe", "kernel")
    solid, dotted, unsplit = gradients.update_parts(rows)
    assert unsplit == 1
    later = rows[rows["epoch"] >= 1]
    assert sorted(solid.index) == sorted(later.index)
    size = (later["update_norm"] / later["relative_update"]).to_numpy()  # ‖W_e‖
    split = (later["run_id"] != old_run).to_numpy()
    want = np.where(split, later["grad_step_norm"] / size, later["relative_update"])
    # the trace columns are float32 (issue 25): the figure's quotients too, to float32's precision
    np.testing.assert_allclose(solid.loc[later.index, "relative_update"], want, rtol=1e-6)
    decayed = later[split & (later["run_id"] != no_decay).to_numpy()]
    assert sorted(dotted.index) == sorted(decayed.index)
    np.testing.assert_allclose(
        dotted.loc[decayed.index, "relative_update"],
        decayed["decay_norm"] * decayed["relative_update"] / decayed["update_norm"],
        rtol=1e-6,
    )

    shown = plotting.plot_update_sizes(probe, runs, tmp_path / "split.png", "remedies")
    assert len(shown) == 9 and shown["drawn"].all()
    whole = probe.drop(columns=["decay_norm", "grad_step_norm"])  # as traced before the split
    plotting.plot_update_sizes(whole, runs, tmp_path / "whole.png", "remedies")
    split_png, whole_png = check_png(tmp_path / "split.png"), check_png(tmp_path / "whole.png")
    assert split_png.shape == whole_png.shape and not np.array_equal(split_png, whole_png)


def test_remedies_heatmap_numbers_against_numpy(remedies, tmp_path: Path) -> None:
    from PIL import Image
    from scipy import stats as sps

    runs, _, _ = remedies
    table = plotting.plot_remedies_heatmap(runs, tmp_path / "remedies.png", "remedies")
    with Image.open(tmp_path / "remedies.png") as img:
        assert int(img.info["Panels"]) == 2 and img.height <= D.MAX_HEIGHT_PX
    check_png(tmp_path / "remedies.png")
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


def test_remedies_heatmap_cells_show_the_table(remedies) -> None:
    """What the remedies heatmap draws is its table's: each colour mesh holds the log10 ratios
    (accuracies) row by row, row 0 on top, a missing one left blank; every cell's text reads
    its numbers back (geometric mean, then min–max); each row is labelled with its config."""
    from gradsweep.plotting import remedies as R

    runs = remedies[0].copy()
    ids = list(pd.unique(runs["config_id"]))
    runs.loc[runs["config_id"] == ids[1], "test_acc"] = np.nan
    runs.loc[runs["config_id"] == ids[2], "grad_ratio_final"] = np.nan
    with style.style():
        fig, table = R._remedies_figure(runs, "remedies")
    ax_ratio, ax_acc = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    ratios = ["grad_ratio_init", "grad_ratio_final", "update_ratio_init", "update_ratio_final"]
    n = len(table)
    log_ratios = np.log10(table[ratios].to_numpy(dtype=float))
    assert n == 9 and np.isnan(log_ratios).sum() == 1 and table["test_acc"].isna().sum() == 1
    vmax = max(np.nanmax(np.abs(log_ratios)), 0.5)  # symmetric, as the ratio heatmap's
    acc = table[["test_acc"]].to_numpy(dtype=float)
    for ax, expected, limits in (
        (ax_ratio, log_ratios, (-vmax, vmax)),
        (ax_acc, acc, (min(np.nanmin(acc), 90), 100)),  # greens from the lowest
    ):
        (mesh,) = ax.collections
        drawn = mesh.get_array()
        assert drawn.shape == expected.shape and ax.get_ylim() == (n, 0)
        np.testing.assert_array_equal(np.ma.getmaskarray(drawn), np.isnan(expected))
        np.testing.assert_allclose(drawn.filled(np.nan), expected)
        assert (mesh.norm.vmin, mesh.norm.vmax) == pytest.approx(limits)
    assert [t.get_text() for t in ax_ratio.get_xticklabels()] == [
        "grad ratio\nat init", "grad ratio\nat end", "update ratio\nepoch 1",
        "update ratio\nlast epoch",
    ]  # fmt: skip
    assert [t.get_text() for t in ax_acc.get_xticklabels()] == ["test acc (%)"]
    np.testing.assert_array_equal(ax_ratio.get_yticks(), np.arange(n) + 0.5)
    assert [t.get_text() for t in ax_ratio.get_yticklabels()] == [
        f"{label} (n = 2)" for label in table["label"]
    ]
    cbars = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert cbars == ["log₁₀(ratio last ÷ first)\n> 0: first layer slower", "test accuracy (%)"]

    def text(ax: Any, x: float, y: float) -> str:
        (found,) = [t.get_text() for t in ax.texts if t.get_position() == (x, y)]
        return found

    def read(ax: Any, x: float, y: float) -> list[list[float]]:  # the numbers of a cell
        return [[float(v) for v in line.split("–")] for line in text(ax, x, y).split("\n")]

    for i, row in table.iterrows():
        for j, col in enumerate(ratios):
            if np.isnan(row[col]):
                assert text(ax_ratio, j + 0.5, i + 0.5) == "—"
                continue
            (mean,), (lo, hi) = read(ax_ratio, j + 0.5, i + 0.5)
            assert mean == pytest.approx(row[col], rel=5e-3)
            assert (lo, hi) == pytest.approx((row[f"{col}_min"], row[f"{col}_max"]), rel=5e-3)
        if np.isnan(row["test_acc"]):
            assert text(ax_acc, 0.5, i + 0.5) == "—"
            continue
        (mean,), (lo, hi) = read(ax_acc, 0.5, i + 0.5)
        assert mean == pytest.approx(row["test_acc"], abs=0.05)
        assert (lo, hi) == pytest.approx((row["test_acc_min"], row["test_acc_max"]), abs=0.05)
    fig.clear()


def test_bn_distribution_drift_against_numpy(remedies, tmp_path: Path) -> None:
    runs, traces, metrics = remedies
    bn = runs[runs["optimizer"] == "sgd"]
    bn = bn[~bn["residual"].astype(bool) & (bn["activation"] == "sigmoid")]
    assert set(bn["normalization"]) == {"none", "batch_norm"}
    table = plotting.plot_bn_distribution(metrics, traces, bn, tmp_path / "bn.png", "remedies")
    check_png(tmp_path / "bn.png")
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


def test_ratio_heatmap_grid_of_depth_and_weight_variance(tmp_path: Path) -> None:
    """edge_of_chaos (one activation × init, rows = depth × σ_w²) is drawn as a depths × σ_w²
    grid, not 12 rows × 1 column; the returned cells stay one per config with its row label."""
    built = edge_of_chaos_sweep({(d, w): 0.5 for d in (2, 5, 10) for w in (1.0, 1.5, 2.0, 3.0)})
    runs = built.runs
    out = tmp_path / "heatmap.png"
    cells = plotting.plot_ratio_heatmap(runs, out)
    height, width = check_png(out).shape[:2]
    assert width > 1.5 * height  # 3 rows × 4 columns per panel, not 12 rows tall
    at_init = cells[cells["when"] == "at initialisation"]
    assert len(at_init) == 12 and set(at_init["column"]) == {"tanh\nscaled_normal"}
    assert at_init["row"].iloc[1] == "2 hidden layers · σ_w² 1.5"
    gmean = runs.assign(row=sweep_figures.heatmap_rows(runs)).groupby("row")["grad_ratio_init"]
    expected = gmean.apply(lambda r: float(np.exp(np.log(r).mean())))
    np.testing.assert_allclose(at_init.set_index("row")["gmean"], expected[at_init["row"]])
