"""The smoke sweep end to end with real Snakemake, TensorFlow and Parquet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml
from matplotlib.image import imread
from workflow_helpers import copy_workflow, job_stats, most_at_once, snakemake

from gradsweep.config import available_cpus
from gradsweep.costs import read_costs
from gradsweep.io import METRICS_SCHEMA, TRACES_SCHEMA

# The README's command: --cores 8 whatever the machine has. The smoke sweep's 8 runs would be
# one batch (one train job); two runs per job make 4 train jobs, so the cpus cap shows.
SMOKE = ("--cores", "8", "--configfile", "config/smoke2.yaml")
CPUS = available_cpus()


@pytest.fixture(scope="module")
def smoke_log(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    config["train"]["runs_per_job"] = 2
    config["sweep"] = "smoke"  # its folder: results/smoke/, not results/smoke2/
    (workdir / "config/smoke2.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, *SMOKE)
    return workdir, result.stdout + result.stderr


@pytest.fixture(scope="module")
def smoke_run(smoke_log):
    return smoke_log[0]


def test_cores_8_never_runs_more_train_jobs_than_cpus(smoke_log):
    # 4 train jobs of 1 thread: --cores 8 alone would start all of them at once.
    assert most_at_once(smoke_log[1], "train") == min(CPUS, 4)


def test_smoke_sweep_writes_every_output(smoke_run):
    runs = pd.read_parquet(smoke_run / "results/smoke/runs.parquet")
    assert len(runs) == 8 and set(runs["status"]) == {"ok"}
    assert set(runs["depth"]) == {1, 4} and set(runs["activation"]) == {"sigmoid", "relu"}
    for col in (
        "run_id",
        "experiment",
        "dataset",
        "widths",
        "init",
        "seed",
        "epochs",
        "best_val_acc",
        "test_acc",
        "wall_s",
        "grad_ratio_init",
        "grad_ratio_final",
    ):
        assert col in runs
    assert runs["best_val_acc"].between(0, 1).all()

    # the sweep's traces: one file per run, read as one table (docs/outputs.md)
    traces = ds.dataset(smoke_run / "results/smoke/traces", partitioning="hive").to_table()
    for field in TRACES_SCHEMA:
        assert traces.schema.field(field.name).type == field.type
    traces = traces.to_pandas()
    assert set(traces["source"]) == {"step", "probe"} and set(traces["experiment"]) == {"smoke"}
    assert set(traces["run_id"]) == set(runs["run_id"])
    one = traces[traces["run_id"] == "smoke/d4-w16-relu-he_normal-s0"]
    # 1077 digits / batch 10 = 107 steps per epoch, 3 epochs, 5 layers x (kernel, bias)
    assert len(one[one["source"] == "step"]) == 3 * 107 * 10
    assert len(one[one["source"] == "probe"]) == 4 * 10  # epochs 0..3
    assert one.loc[one["source"] == "step", "step"].max() == 3 * 107

    metrics = pq.read_table(smoke_run / "results/smoke/metrics.parquet")
    assert set(METRICS_SCHEMA.names) <= set(metrics.column_names)
    assert metrics.num_rows == 8 * 4

    info = json.loads(
        (
            smoke_run / "results/smoke/runs/smoke/d1-w16-sigmoid-scaled_normal-s0/run.json"
        ).read_text()
    )
    assert info["status"] == "ok"
    # the device TensorFlow finds here: a GPU where one is visible (the README's GPU install)
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        assert info["device"].startswith("/device:GPU:"), info["device"]
    else:
        assert info["device"] == "/device:CPU:0", info["device"]
    assert info["config"]["widths"] == [16] and info["versions"]["tensorflow"].startswith("2.")


def test_every_trace_is_stored_once(smoke_run):
    """A fresh sweep's run files are hard links to the run cache (issue 25): results/ holds no
    second copy of a trace, neither per experiment nor sweep-wide, and the one folder reads
    with filter push-down in pandas and pyarrow."""
    sweep = smoke_run / "results/smoke"
    assert not (sweep / "traces.parquet").exists()
    assert not list((sweep / "experiments").glob("*/traces.parquet"))
    files = sorted((sweep / "traces/experiment=smoke").glob("*.parquet"))
    assert len(files) == 8 and not list((sweep / "runs").rglob("traces.parquet"))
    cached = {p.stat().st_ino: p for p in (smoke_run / "results/cache").rglob("traces.parquet")}
    for file in files:
        assert file.stat().st_ino in cached and file.stat().st_nlink == 2, file
        run_id = pq.read_table(file, columns=["run_id"])["run_id"].unique().to_pylist()
        assert run_id == [f"smoke/{file.stem}"]
    # the sweep's traces in bytes: the files above, once (du counts a hard link once)
    one = "smoke/d4-w16-relu-he_normal-s0"
    filters = [("experiment", "==", "smoke"), ("run_id", "==", one), ("source", "==", "probe")]
    by_pandas = pd.read_parquet(sweep / "traces", filters=filters)
    table = ds.dataset(sweep / "traces", partitioning="hive").to_table(
        filter=(ds.field("run_id") == one) & (ds.field("source") == "probe")
    )
    direct = pq.read_table(sweep / f"traces/experiment=smoke/{one.split('/')[1]}.parquet")
    direct = direct.filter(pc.equal(direct["source"], "probe"))
    assert len(by_pandas) == table.num_rows == direct.num_rows == 4 * 10
    np.testing.assert_array_equal(by_pandas["grad_norm"], direct["grad_norm"].to_numpy())
    assert pd.read_parquet(sweep / "traces", filters=[("experiment", "==", "other")]).empty


def test_results_table_has_a_row_per_config_and_per_seed(smoke_run):
    text = (smoke_run / "results/smoke/results.md").read_text()
    runs = pd.read_parquet(smoke_run / "results/smoke/runs.parquet")
    rows = [line for line in text.splitlines() if line.startswith("|") and "---" not in line]
    assert len(rows) == runs["config_id"].nunique() + 1  # header + one per config
    # one seed per config: one number per metric, no median beside a mean, no interval
    assert "median" not in rows[0] and "[" not in "".join(rows[1:])
    assert "One seed per config: single numbers, no intervals." in text
    for row in rows[1:]:  # a net with one hidden layer is never called healthy
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert (cells[0] == "1") == (cells[-1] == "n/a: one hidden layer"), row
    assert "## smoke" in text and "[results_seeds.md](results_seeds.md)" in text
    seeds = (smoke_run / "results/smoke/results_seeds.md").read_text()
    rows = [line for line in seeds.splitlines() if line.startswith("|") and "---" not in line]
    assert len(rows) == len(runs) + 1  # header + one per run
    # the verdicts each run should get from its own probe traces (the oracle below)
    probe = pd.read_parquet(
        smoke_run / "results/smoke/traces",
        filters=[("source", "==", "probe"), ("param", "==", "bias"), ("experiment", "==", "smoke")],
    )
    for _, run in runs.iterrows():
        if run["depth"] == 1:  # one hidden layer: no ratio, no verdict, anywhere (issue 24)
            assert run[[c for c in runs if "ratio" in c]].isna().all(), run["run_id"]
            assert {run["verdict_init"], run["verdict"]} == {"n/a: one hidden layer"}
            assert np.isnan(run["escape_epoch"])
            continue
        init, final, escape, dynamic = _verdicts(probe[probe["run_id"] == run["run_id"]],
                                                 run["depth"])  # fmt: skip
        assert (run["verdict_init"], run["verdict_final"]) == (init, final), run["run_id"]
        assert run["escape_epoch"] == pytest.approx(escape, nan_ok=True), run["run_id"]
        assert (run["verdict"] == dynamic) if dynamic else run["verdict"].startswith(init)


def _classify(ratio: float) -> str:
    return "vanishing" if ratio > 10 else "exploding" if ratio < 0.1 else "healthy"


def _verdicts(probe: pd.DataFrame, depth: int) -> tuple[str, str, float, str | None]:
    """Verdict at init and at the end, escape epoch and the dynamic verdict of a run that did
    not diverge, from its probe bias-gradient norms: ratio = last ÷ first hidden layer."""
    norms = probe.pivot_table(index="epoch", columns="layer", values="grad_norm")
    ratios = norms[depth] / norms[1]
    classes = [_classify(r) for r in ratios]
    healthy = [c == "healthy" for c in classes]
    # the first epoch from which every later one is healthy (NaN: unhealthy at the end)
    escape = next((float(e) for i, e in enumerate(ratios.index) if all(healthy[i:])), np.nan)
    if all(healthy):
        dynamic = "healthy"
    elif len(set(classes)) == 1:
        dynamic = f"{classes[0]} throughout"
    elif classes[0] != "healthy" and np.isfinite(escape):
        dynamic = f"{classes[0]} until epoch {int(escape)} → healthy"
    else:  # healthy → unhealthy, or no escape: only its first phase is checked
        dynamic = None
    return classes[0], classes[-1], escape, dynamic


def test_figures_are_real_pngs(smoke_run):
    figures = sorted((smoke_run / "results/smoke/figures").rglob("*.png"))
    assert len(figures) >= 5
    # every per-experiment page, the learning curves too (issue 24)
    for name in ("gradients", "steps", "updates", "learning_curves", "diagnostics"):
        assert (smoke_run / f"results/smoke/figures/smoke/{name}.png") in figures, name
    for png in figures:
        height, width, _ = imread(png).shape
        assert height > 300 and width > 300, png


def test_deep_sigmoid_gradient_vanishes_and_relu_he_does_not(smoke_run):
    runs = pd.read_parquet(smoke_run / "results/smoke/runs.parquet").set_index("run")
    sigmoid = runs.loc["d4-w16-sigmoid-scaled_normal-s0", "grad_ratio_init"]
    relu = runs.loc["d4-w16-relu-he_normal-s0", "grad_ratio_init"]
    assert sigmoid > 10 * relu
    assert 1 / 3 < relu < 3


def test_plan_before_the_jobs_and_summary_at_the_end(smoke_log):
    workdir, output = smoke_log
    # 8 runs in 4 batches of 2, nothing in the run cache yet; said before Snakemake plans
    plan = "Plan for smoke: 8 to train, 0 from the cache, 0 done (8 runs, 4 train jobs)"
    assert plan in output.splitlines()
    assert output.index(plan) < output.index("Building DAG of jobs")
    summary = (workdir / "results/smoke/summary.md").read_text()
    assert summary in output  # printed at the end too
    runs = pd.read_parquet(workdir / "results/smoke/runs.parquet")
    diverged = int((runs["status"] == "diverged").sum())
    stuck = int(((runs["best_val_acc"] < 0.2) & (runs["status"] != "diverged")).sum())
    counts = (
        f"8 runs: 8 trained, 0 from the run cache, 0 unchanged, 0 failed; "
        f"{diverged} diverged, {stuck} never learned."
    )
    assert len(runs) == 8 and counts in summary.splitlines()
    assert "every job completed." in summary and "## What failed" not in summary
    for where in (
        "`results/smoke/results.md`",
        "`results/smoke/figures/`",
        "`snakemake --report results/smoke/report.html --configfile config/smoke2.yaml`",
        "`tensorboard --logdir results/smoke/tensorboard`",
    ):
        assert where in summary, where
    # one verdict line: first the config whose gradient ratio at init is farthest from 1
    (line,) = [v for v in summary.splitlines() if v.startswith("- smoke: ")]
    worst = runs.loc[np.abs(np.log10(runs["grad_ratio_init"])).idxmax()]
    label = f"{worst['depth']} × 16 {worst['activation']} {worst['init']}"
    assert line.startswith(f"- smoke: {label} {worst['verdict']}, "), line
    tally = line.rsplit("8 runs at the end: ", 1)[1]
    assert dict(reversed(t.split(" ", 1)) for t in tally.split(", ")) == {
        v: str(n) for v, n in runs["verdict_final"].value_counts().items()
    }
    # every job left its benchmark file (`all` has none: it runs nothing), and the summary
    # names the costliest: by peak RSS a train job (TensorFlow), its RSS the file's
    jobs = job_stats(output)
    costs = read_costs(workdir / "results/smoke")
    assert costs["rule"].value_counts().to_dict() == {r: n for r, n in jobs.items() if r != "all"}
    scripts = costs[costs["rule"] != "run_files"]  # a shell job may end before its first sample
    assert costs["wall_s"].gt(0).all() and scripts["peak_rss_mb"].notna().all()
    by_rss = summary.split("By peak RSS:\n\n- ")[1].splitlines()[0]
    top = costs.loc[costs["peak_rss_mb"].idxmax()]
    assert top["rule"] == "train" and by_rss.startswith(f"`train` ({top['wildcards']}): ")
    assert f"{round(top['peak_rss_mb']):,} MB peak RSS" in by_rss


def test_unchanged_sweep_has_nothing_to_do(smoke_run):
    result = snakemake(smoke_run, *SMOKE, "-n")
    output = result.stdout + result.stderr
    assert "Nothing to be done" in output
    assert "Plan for smoke: 0 to train, 0 from the cache, 8 done (8 runs)" in output
