"""The article's figures from synthetic tables shaped like docs/outputs.md (no TensorFlow)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from synthetic import BASE, Run, check_png, shrink, sweep
from workflow_helpers import copy_workflow, dry_run, job_stats, snakemake

from gradsweep import plotting as article
from gradsweep.plotting import data as D
from gradsweep.plotting import diagnostics, gradients, style

pytestmark = pytest.mark.usefixtures("no_figure_left_open")

NIELSEN = {
    "source": "Nielsen, ch. 5",
    "metric": "probe_bias_norms_init",
    "values": [
        {"widths": "30-30", "value": [0.066, 0.309]},
        {"widths": "30-30-30", "value": [0.012, 0.060, 0.283]},
        {"widths": "30-30-30-30", "value": [0.003, 0.017, 0.070, 0.285]},
    ],
}


def article_sweep(
    experiment: str,
    nets: list[tuple[tuple[int, ...], str, str]],
    *,
    seeds: tuple[int, ...] = (0,),
    diverge: str | None = None,
    **run: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """runs and traces of one experiment of (widths, activation, init) nets, built by
    tests/synthetic.py without noise: the probe bias norm of hidden layer l of a depth-d net
    is BASE · k ** -(d - l) · 0.8 ** epoch · (1 + 0.05 · seed); ``diverge`` names the run that
    diverges at its last epoch. Sigmoid nets learn to 90 % (seed 0), 80 % (seed 1), the others
    to 95 %."""
    runs = [
        Run(
            experiment,
            widths,
            act,
            init,
            seed,
            decay=0.8,
            acc=0.9 - 0.1 * seed if act == "sigmoid" else 0.95,
            **run,
        )  # fmt: skip
        for widths, act, init in nets
        for seed in seeds
    ]
    runs = [replace(r, diverge_at=r.epochs) if r.name == diverge else r for r in runs]
    built = sweep(runs)
    return built.runs, built.traces


def _bias(traces: pd.DataFrame) -> pd.DataFrame:
    return traces[traces["param"] == "bias"]


def test_activations_png(tmp_path: Path) -> None:
    out = tmp_path / "figures" / "activations.png"
    article.plot_activations(out)
    img = check_png(out, min_w=1500, min_h=1000)
    assert img.shape[:2] == (round(7.2 * style.DPI), round(10.5 * style.DPI))
    # σ′'s maximum is marked in the derivative colour (orange, #d95f02)
    rgb = img[..., :3]
    orange = (np.abs(rgb - np.array([0xD9, 0x5F, 0x02]) / 255).sum(axis=-1) < 0.1).mean()
    assert orange > 0.001


def test_one_path_panels_order_layers(tmp_path: Path) -> None:
    nets = [((1, 1, 1, 1), "sigmoid", "scaled_normal")]
    runs, traces = article_sweep("one_path", nets, epochs=12)
    out = tmp_path / "layers.png"
    summary = article.plot_layer_panels(traces, runs, out, "one_path")
    img = check_png(out, min_w=1500)
    assert img.shape[1] == round((2.9 * 4 + 0.8) * style.DPI)  # four panels side by side
    med = summary.set_index("layer")["median"]
    assert list(med.index) == [1, 2, 3, 4]  # output layer left out
    k = shrink("sigmoid", "scaled_normal")  # 5 per layer
    assert med.is_monotonic_increasing and med[4] / med[1] == pytest.approx(k**3, rel=1e-6)
    assert summary.set_index("layer")["first"][4] == pytest.approx(BASE)


def test_layer_order_fraction() -> None:
    norms = pd.DataFrame({1: [1.0, 1.0, 3.0], 2: [2.0, 2.0, 2.0], 3: [3.0, 1.0, 4.0]})
    assert article.layer_order_fraction(norms) == pytest.approx(1 / 3)
    assert np.isnan(article.layer_order_fraction(norms[[1]]))


def test_nndl_speed_sigmoid_vs_relu(tmp_path: Path) -> None:
    nets = [
        ((100, 100, 100), "relu", "scaled_normal_relu"),
        ((100, 100, 100), "sigmoid", "scaled_normal"),
    ]
    runs, traces = article_sweep("nndl_demo", nets, epochs=4, steps_per_epoch=50)
    out = tmp_path / "speed.png"
    summary = article.plot_speed_of_learning(
        traces[traces["source"] == "step"], runs, out, "nndl_demo"
    )
    check_png(out)
    assert list(summary["activation"]) == ["sigmoid", "relu"]  # sigmoid drawn first
    ratio = summary.set_index("activation")["median_ratio"]
    # the oracle: per step, layer 3 ÷ layer 1 of the raw bias trace, median over the steps
    steps = _bias(traces[traces["source"] == "step"]).merge(runs[["run_id", "activation"]])
    for act, d in steps.groupby("activation"):
        wide = d.pivot_table(index="step", columns="layer", values="grad_norm")
        # the norms are float32 (issue 25): equal to float32's precision, not float64's
        assert ratio[act] == pytest.approx((wide[3] / wide[1]).median(), rel=1e-6)
    assert ratio["sigmoid"] == pytest.approx(25, rel=0.2)  # 5 per layer, step noise aside
    assert ratio["relu"] == pytest.approx(1, rel=0.3)
    assert summary.columns[-1] == "median_ratio"


def test_speed_smooths_long_traces(tmp_path: Path) -> None:
    runs, traces = article_sweep(
        "long", [((30, 30), "sigmoid", "scaled_normal")], epochs=3, steps_per_epoch=400
    )
    steps = traces[traces["source"] == "step"]
    assert _bias(steps).groupby("layer").size().max() > gradients.MAX_STEP_POINTS
    summary = article.plot_speed_of_learning(steps, runs, tmp_path / "s.png", "long")
    check_png(tmp_path / "s.png")
    assert len(summary) == 1  # medians are taken on the raw trace, not the smoothed one
    raw = _bias(steps).query("layer == 1")["grad_norm"].median()
    assert summary["median_layer1"].iloc[0] == pytest.approx(raw)


def test_init_norm_table_against_reference() -> None:
    nets = [((30, 30), "sigmoid", "scaled_normal"), ((30, 30, 30), "sigmoid", "scaled_normal"),
            ((50, 50), "sigmoid", "scaled_normal")]  # fmt: skip
    runs, traces = article_sweep("nielsen_init", nets, epochs=2, seeds=(0, 1))
    table = article.init_norm_table(traces, runs, NIELSEN, "nielsen_init")
    assert len(table) == 2 + 3 + 2 and (table["n_runs"] == 2).all()
    row = table[(table["widths"] == "30-30-30") & (table["layer"] == 1)].iloc[0]
    # median of the two seeds' epoch-0 norms: BASE / 5² · (1 + 0.025), read from the traces
    deep = runs.loc[runs["widths"] == "30-30-30", "run_id"]
    init = _bias(traces).query("source == 'probe' and epoch == 0")
    assert row["measured"] == pytest.approx(
        init.loc[init["run_id"].isin(deep) & (init["layer"] == 1), "grad_norm"].median()
    )
    assert row["measured"] == pytest.approx(BASE / 25 * 1.025)
    assert row["reference"] == 0.012 and row["ratio"] == pytest.approx(row["measured"] / 0.012)
    assert table.loc[table["widths"] == "50-50", "reference"].isna().all()  # no published value
    assert table["layer"].max() == 3  # output layers are not hidden layers
    # no reference block: measured values only
    bare = article.init_norm_table(traces, runs, None, "nielsen_init")
    assert bare["reference"].isna().all() and np.allclose(bare["measured"], table["measured"])


def test_nielsen_figures(tmp_path: Path) -> None:
    nets = [((30,) * d, "sigmoid", "scaled_normal") for d in (2, 3, 4)]
    runs, traces = article_sweep("nielsen_init", nets, epochs=40, seeds=(0, 1))
    probe = traces[traces["source"] == "probe"]
    table = article.plot_init_norms(probe, runs, NIELSEN, tmp_path / "init.png", "nielsen_init")
    check_png(tmp_path / "init.png")
    assert table["reference"].notna().all() and len(table) == 9
    article.plot_init_norms(probe, runs, None, tmp_path / "bare.png", "nielsen_init")
    check_png(tmp_path / "bare.png")

    # the published values add black line-and-diamond marks over the bars
    def black(name: str) -> float:
        return float((mpimg.imread(tmp_path / name)[..., :3].sum(axis=-1) < 0.15).mean())

    assert black("init.png") > 1.5 * black("bare.png")
    summary = article.plot_speed_of_learning(
        probe, runs, tmp_path / "speed.png", "nielsen_init", source="probe", reference=NIELSEN
    )
    check_png(tmp_path / "speed.png")
    assert len(summary) == 3 and (summary["n_seeds"] == 2).all()  # one panel per config
    deep = summary[summary["config_id"].str.contains("/d4-")]
    assert deep["median_ratio"].iloc[0] == pytest.approx(125)


def test_diagnostics_columns_and_values(tmp_path: Path) -> None:
    nets = [((16, 16, 16), a, "he_normal") for a in ("relu", "sigmoid", "tanh")]
    diverge = "d3-w16-relu-he_normal-s1"
    runs, traces = article_sweep("mix", nets, epochs=5, seeds=(0, 1), diverge=diverge)
    probe = traces[traces["source"] == "probe"]
    out = tmp_path / "diag.png"
    summary = article.plot_diagnostics(probe, runs, out, "mix")
    img = check_png(out, min_w=1000, min_h=1000)
    # 3 configs of 2 seeds: three columns
    assert img.shape[1] == round((2.9 * 3 + 3.4) * style.DPI)
    assert set(summary["layer"]) == {1, 2, 3} and len(summary) == 3 * 3
    assert (summary["n_seeds"] == 2).all()
    relu = runs.loc[runs["activation"] == "relu", "config_id"].iloc[0]
    one = summary.set_index(["config_id", "layer"]).loc[(relu, 2)]
    # mean over the two seeds; the diverged seed's last epoch is blanked, so its last
    # finite epoch (4) counts: dead 0.25 and 0.2, weight norm 5.5 and 5.4
    assert one["dead_frac_last"] == pytest.approx((0.25 + 0.2) / 2) and one["dead_frac_first"] == 0
    assert one["weight_norm_last"] == pytest.approx((5.5 + 5.4) / 2)
    assert one["saturated_frac_first"] == pytest.approx(0.1 * 2 / 3)
    table = article.diagnostics_table(probe, runs)
    last = table[(table["run_id"] == f"mix/{diverge}") & (table["epoch"] == 5)]
    values = last.drop(columns=["run_id", "config_id", "epoch", "layer"])
    assert len(last) == 3 and values.isna().all().all()


def test_diagnostics_picks_informative_configs(tmp_path: Path) -> None:
    widths = [(w, w) for w in (8, 16, 32, 64, 128)]
    nets = [(w, a, "he_normal") for w in widths for a in ("relu", "sigmoid", "tanh")]
    runs, traces = article_sweep("wide", nets, epochs=3, seeds=(0, 1))
    runs.loc[runs["run_id"] == "wide/d2-w32-tanh-he_normal-s1", "best_val_acc"] = 0.05
    assert runs["config_id"].nunique() == 15 > diagnostics.MAX_DIAG_CONFIGS
    ids, why = diagnostics.pick_configs(runs)
    picked = runs.drop_duplicates("config_id").set_index("config_id").loc[ids]
    # highest ratio at init: sigmoid (4 per layer); lowest: relu (1); lowest median best val
    # acc: the tanh config with one seed at 5 % (median 0.5, below sigmoid's 0.85)
    assert set(picked["activation"]) == {"sigmoid", "relu", "tanh"}
    assert "highest ratio at init" in why and "lowest accuracy" in why
    out = tmp_path / "diag.png"
    summary = article.plot_diagnostics(traces, runs, out, "wide")
    img = check_png(out)
    assert summary["config_id"].nunique() == 3
    n_rows = len(diagnostics.DIAGNOSTIC_ROWS)
    assert n_rows * 3 <= D.MAX_PANELS
    assert abs(img.shape[0] - (1.45 * n_rows + 1.9) * style.DPI) <= 1


def test_figures_without_data(tmp_path: Path) -> None:
    runs, traces = article_sweep("x", [((30, 30), "sigmoid", "scaled_normal")], epochs=1)
    # with data, the tables hold the traces' numbers (pandas over the probe bias rows) ...
    probe = _bias(traces[(traces["source"] == "probe") & (traces["layer"] <= 2)])
    by_layer = probe.sort_values("epoch").groupby("layer")["grad_norm"]
    panels = article.plot_layer_panels(traces, runs, tmp_path / "full.png", "x")
    expected = by_layer.agg(["median", "first", "last"])
    assert np.allclose(panels.set_index("layer")[["median", "first", "last"]], expected)
    diag = article.plot_diagnostics(traces, runs, tmp_path / "full_diag.png", "x")
    assert diag["grad_norm_first"].tolist() == pytest.approx(by_layer.first().tolist())
    assert diag["grad_norm_last"].tolist() == pytest.approx(by_layer.last().tolist())
    # ... and without any (no trace rows, or an experiment without runs) they are empty,
    # while every figure is still written, saying so
    empty = traces.iloc[:0]
    tables = {
        "a": article.plot_layer_panels(empty, runs, tmp_path / "a.png", "x"),
        "b": article.plot_speed_of_learning(empty, runs, tmp_path / "b.png", "x"),
        "c": article.plot_init_norms(empty, runs, NIELSEN, tmp_path / "c.png", "x"),
        "d": article.plot_diagnostics(empty, runs, tmp_path / "d.png", "x"),
        "e": article.plot_diagnostics(traces, runs, tmp_path / "e.png", "no such experiment"),
    }
    for name, table in tables.items():
        assert table.empty, (name, table)
        assert mpimg.imread(tmp_path / f"{name}.png").ndim == 3, name


def _planned_rules(workdir: Path, *args: str) -> dict[str, int]:
    return dict(job_stats(snakemake(workdir, "-n", "--cores", "2", *args).stdout))


def _longest_first(jobs: list[dict[str, str]]) -> None:
    """The train job of the default sweep's longest run, the 2048-1024-512-256 net for 60
    epochs, has the highest priority, so it does not start last and run alone; the batches of
    one-layer sigmoid nets rank far below it."""
    manifests = {
        f"results/default/batches/{job['experiment']}/{job['batch']}.json": float(
            job.get("priority", 0)
        )
        for job in jobs
        if job["rule"] == "train"
    }
    placed = [job for job in jobs if job["rule"] == "run_files"]
    wide = [job["input"] for job in placed if "w2048x1024x512x256" in job["run"]]
    assert len(wide) == 1, wide
    top = manifests.pop(wide[0])
    assert top > max(manifests.values())
    shallow = {
        job["input"]
        for job in placed
        if job["experiment"] == "sigmoid_depth" and job["run"].startswith("d1-")
    }
    assert shallow and all(0 < manifests[path] < top / 10 for path in shallow)


@pytest.mark.slow  # runs Snakemake (a dry run)
def test_workflow_plans_article_figures_and_longest_batches_first(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    counts, jobs, _ = dry_run(workdir, "--cores", "2")
    _longest_first(jobs)
    default = dict(counts)
    for rule in ("plot_activations", "plot_one_path", "plot_nndl_demo", "plot_nielsen_init",
                 "plot_remedies", "plot_batch_norm_sigmoid"):  # fmt: skip
        assert default.get(rule) == 1, default
    assert default["plot_diagnostics"] == default["plot_experiment"] > 5  # one page each
    smoke = _planned_rules(workdir, "--configfile", "config/smoke.yaml")
    assert smoke.get("plot_activations") == 1 and smoke.get("plot_diagnostics") == 1
    assert not {"plot_one_path", "plot_nndl_demo", "plot_nielsen_init", "plot_remedies",
                "plot_batch_norm_sigmoid"} & set(smoke)  # fmt: skip
