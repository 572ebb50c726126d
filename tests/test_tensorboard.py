"""TensorBoard event files (gradsweep.tensorboard), read back with TensorBoard's own code.

A module fixture trains four tiny real runs on digits in two experiments (one run diverges),
aggregates them, and writes ``tensorboard/``. The tests read it back through TensorBoard's
event multiplexer and data provider, and ask the HParams plugin the same HTTP routes its
dashboard calls (``/experiment``, ``/session_groups``). Expected values come from the
aggregates (runs.parquet, metrics.parquet, traces.parquet) and run.json, not from the writer.

The slow test runs the smoke sweep with Snakemake, reads ``results/smoke/tensorboard`` back from a
real ``tensorboard --logdir`` process over HTTP, then retrains one run and shrinks the grid.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import copy_workflow, job_stats, snakemake

from gradsweep import data
from gradsweep.aggregate import aggregate
from gradsweep.batches import cache_entry
from gradsweep.config import REMEDY_DEFAULTS, expand_runs
from gradsweep.tensorboard import (
    TensorBoardError,
    run_hparams,
    write_experiment,
    write_sweep_config,
)

CONFIG = {
    "training": {"epochs": 2, "batch_size": 10, "learning_rate": 0.1, "probe_size": 100},
    "experiments": {
        "depths": {
            "dataset": "digits",
            "grid": {
                "depth": [1, 3],
                "width": [8],
                "activation": ["sigmoid"],
                "init": ["scaled_normal"],
            },
        },
        "rates": {  # eta = 50 on a deep ReLU net: NaN within the first epoch
            "dataset": "digits",
            "training": {"l2": 0.0},
            "grid": {
                "depth": [4],
                "width": [16],
                "activation": ["relu"],
                "init": ["he_normal"],
                "learning_rate": [0.05, 50.0],
            },
        },
    },
}
DIVERGED = "rates/d4-w16-relu-he_normal-s0-learning_rate50.0"
ALL_STATUSES = ["STATUS_FAILURE", "STATUS_RUNNING", "STATUS_SUCCESS", "STATUS_UNKNOWN"]
METRICS = ["best_val_acc", "test_acc", "grad_ratio_init", "grad_ratio_final"]


def _aggregates(results: Path, experiment: str) -> dict[str, Any]:
    folder = results / "experiments" / experiment
    infos = sorted(str(p) for p in (results / "runs" / experiment).glob("*/run.json"))
    return {
        "infos": infos,
        "runs": folder / "runs.parquet",
        "traces": [p.replace("run.json", "traces.parquet") for p in infos],
        "metrics": folder / "metrics.parquet",
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """results/ of four real runs and results/tensorboard/ written from them."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    digits = results.parent / "digits.npz"
    data.prepare("digits", [], digits)
    # Trained in a fresh process: TensorFlow's thread pools are set once per process, and
    # other tests of the session may already have started TensorFlow.
    train = (
        "import json, sys; from pathlib import Path; from gradsweep.run import train_run\n"
        "for cfg in json.loads(sys.argv[1]):\n"
        "    out = Path(sys.argv[3]) / cfg['experiment'] / cfg['run']\n"
        "    train_run(cfg, Path(sys.argv[2]), out, log=lambda _: None)\n"
    )
    runs = json.dumps(expand_runs(CONFIG))
    subprocess.run([sys.executable, "-c", train, runs, digits, results / "runs"], check=True)
    for experiment in CONFIG["experiments"]:
        files = _aggregates(results, experiment)
        aggregate(
            files["infos"],
            files["traces"],
            [p.replace("run.json", "metrics.parquet") for p in files["infos"]],
            files["runs"],
            files["metrics"],
        )
        write_experiment(**files, out_dir=results / "tensorboard" / experiment)
    infos = sorted(str(p) for p in (results / "runs").glob("*/*/run.json"))
    write_sweep_config(infos, results / "tensorboard" / "hparams-config")
    return results


class Board:
    """What TensorBoard serves for a logdir, through its own loader and plugin backends."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.backend.event_processing import data_provider
        from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
        from tensorboard.plugins import base_plugin
        from tensorboard.plugins.hparams import hparams_plugin

        self.multiplexer = pem.EventMultiplexer()
        self.multiplexer.AddRunsFromDirectory(str(logdir))
        self.multiplexer.Reload()
        provider = data_provider.MultiplexerDataProvider(self.multiplexer, str(logdir))
        context = base_plugin.TBContext(
            logdir=str(logdir), data_provider=provider, multiplexer=self.multiplexer
        )
        self.hparams_routes = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def hparams(self, route: str, request: dict) -> dict:
        from werkzeug import test, wrappers

        client = test.Client(self.hparams_routes[route], wrappers.Response)
        response = client.post(route, data=json.dumps(request))
        assert response.status_code == 200, response.data
        return json.loads(response.data)

    def experiment(self) -> dict:
        return self.hparams("/experiment", {})

    def session_groups(self) -> list[dict]:
        request = {"allowedStatuses": ALL_STATUSES, "startIndex": 0, "sliceSize": 10_000}
        return self.hparams("/session_groups", request)["sessionGroups"]

    def scalars(self, run: str, tag: str) -> dict[int, float]:
        events = self.multiplexer.Tensors(run, tag)
        from tensorboard.util import tensor_util

        return {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in events}


@pytest.fixture(scope="module")
def board(sweep: Path) -> Board:
    return Board(sweep / "tensorboard")


def _runs(sweep: Path) -> pd.DataFrame:
    return pd.concat(
        pd.read_parquet(sweep / "experiments" / e / "runs.parquet") for e in CONFIG["experiments"]
    ).set_index("run_id")


def test_one_folder_and_event_file_per_run(sweep: Path, board: Board) -> None:
    runs = _runs(sweep)
    folders = sorted(
        str(p.parent.relative_to(sweep / "tensorboard"))
        for p in (sweep / "tensorboard").rglob("events.out.tfevents.*")
    )
    assert folders == sorted([*runs.index, "hparams-config"])  # one file each
    assert sorted(board.multiplexer.Runs()) == folders
    assert not list((sweep / "tensorboard").glob(".*"))  # no temporary folders left


def test_hparams_experiment_is_the_union_of_all_settings(sweep: Path, board: Board) -> None:
    experiment = board.experiment()
    infos = [json.loads(p.read_text()) for p in sorted((sweep / "runs").glob("*/*/run.json"))]
    # remedy settings left at their defaults are not in a run's config: filled in
    configs = [{**REMEDY_DEFAULTS, **info["config"]} for info in infos]
    hparams = {h["name"]: h for h in experiment["hparamInfos"]}
    expected_names = {k for c in configs for k, v in c.items() if v is not None} - {
        "run",
        "trainer_version",
    }
    assert set(hparams) == expected_names | {"depth"}
    # both experiments' values, in one domain per hparam
    assert hparams["experiment"]["domainDiscrete"] == ["depths", "rates"]
    assert hparams["learning_rate"]["domainDiscrete"] == [0.05, 0.1, 50.0]
    assert hparams["depth"]["domainDiscrete"] == [1, 3, 4]
    assert hparams["widths"]["domainDiscrete"] == sorted(_runs(sweep)["widths"].unique())
    assert hparams["l2"]["domainDiscrete"] == [0.0, 5.0]
    assert hparams["activation"]["type"] == "DATA_TYPE_STRING"
    assert hparams["seed"]["type"] == "DATA_TYPE_FLOAT64"
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [
        f"hparams/{name}" for name in METRICS
    ]
    assert [m["displayName"] for m in experiment["metricInfos"]] == METRICS


def test_one_session_group_per_run_with_its_settings_and_metrics(sweep: Path, board: Board) -> None:
    runs = _runs(sweep)
    groups = {g["name"]: g for g in board.session_groups()}
    assert sorted(groups) == sorted(runs.index)
    for run_id, row in runs.iterrows():
        group = groups[run_id]
        hparams = group["hparams"]
        for column in ("experiment", "dataset", "widths", "activation", "init"):
            assert hparams[column] == row[column], (run_id, column)
        for column in ("depth", "seed", "epochs", "learning_rate", "batch_size"):
            assert hparams[column] == pytest.approx(row[column]), (run_id, column)
        config = json.loads((sweep / "runs" / run_id / "run.json").read_text())["config"]
        assert hparams["l2"] == config["l2"] and hparams["loss"] == config["loss"]
        assert "train_subset" not in hparams  # null: no value, an empty cell
        assert hparams["optimizer"] == "sgd" and hparams["residual"] is False  # the defaults

        (session,) = group["sessions"]
        assert session["status"] == (
            "STATUS_SUCCESS" if row["status"] == "ok" else "STATUS_FAILURE"
        )
        values = {m["name"]["tag"]: m for m in session["metricValues"]}
        expected = {f"hparams/{name}": row[name] for name in METRICS if math.isfinite(row[name])}
        assert set(values) == set(expected), run_id
        for tag, value in expected.items():
            assert values[tag]["value"] == pytest.approx(value, rel=1e-6), (run_id, tag)
        steps = {  # the epoch each value belongs to
            "best_val_acc": row["best_epoch"],
            "test_acc": row["best_epoch"],
            "grad_ratio_init": 0,
            "grad_ratio_final": row["epochs"],
        }
        for name, step in steps.items():
            if f"hparams/{name}" in values:
                assert values[f"hparams/{name}"].get("trainingStep", 0) == step, (run_id, name)


def test_diverged_run_is_a_failed_session_without_nan(sweep: Path, board: Board) -> None:
    runs = _runs(sweep)
    assert runs.loc[DIVERGED, "status"] == "diverged"  # the fixture's premise
    groups = {g["name"]: g for g in board.session_groups()}
    (session,) = groups[DIVERGED]["sessions"]
    assert session["status"] == "STATUS_FAILURE"
    for metric in session["metricValues"]:
        assert math.isfinite(metric["value"])
    val_acc = board.scalars(DIVERGED, "accuracy/val")
    assert 0 in val_acc and all(math.isfinite(v) for v in val_acc.values())


def test_scalars_per_epoch_match_the_aggregates(sweep: Path, board: Board) -> None:
    runs = _runs(sweep)
    for experiment in CONFIG["experiments"]:
        metrics = pd.read_parquet(sweep / "experiments" / experiment / "metrics.parquet")
        traces = pd.concat(pd.read_parquet(p) for p in _aggregates(sweep, experiment)["traces"])
        probe = traces[traces["source"] == "probe"]
        for run_id, rows in metrics.groupby("run_id"):
            depth = int(runs.loc[run_id, "depth"])
            tags = set(board.multiplexer.GetAccumulator(run_id).Tags()["tensors"])
            layers = [*(f"layer{i}" for i in range(1, depth + 1)), "output"]
            assert tags - {"_hparams_/session_start_info", "_hparams_/session_end_info"} == {
                *(f"{w}/{s}" for w in ("loss", "accuracy") for s in ("train", "val", "test")),
                *(f"probe_grad_norm_{p}/{layer}" for p in ("bias", "kernel") for layer in layers),
                *(  # where the run has a finite one (a trained epoch, no divergence)
                    f"probe_relative_update_{r.param}/{layers[r.layer - 1]}"
                    for r in probe[probe["run_id"] == run_id].itertuples()
                    if np.isfinite(r.relative_update)
                ),
                *(["grad_ratio"] if depth > 1 else []),  # one hidden layer: no ratio
                *(f"hparams/{name}" for name in METRICS if math.isfinite(runs.loc[run_id, name])),
            }
            assert any("ratio" in t for t in tags) == (depth > 1)  # one hidden layer: none
            for column, tag in (("val_acc", "accuracy/val"), ("train_loss", "loss/train")):
                finite = rows[np.isfinite(rows[column])]
                expected = dict(zip(finite["epoch"], finite[column], strict=True))
                assert board.scalars(run_id, tag) == pytest.approx(expected, rel=1e-6)
            run_probe = probe[probe["run_id"] == run_id]
            for param in ("bias", "kernel"):
                for layer in range(1, depth + 2):
                    name = "output" if layer == depth + 1 else f"layer{layer}"
                    rows_l = run_probe[
                        (run_probe["param"] == param) & (run_probe["layer"] == layer)
                    ]
                    for column, tag in (
                        ("grad_norm", f"probe_grad_norm_{param}/{name}"),
                        ("relative_update", f"probe_relative_update_{param}/{name}"),
                    ):
                        finite = rows_l[np.isfinite(rows_l[column])]
                        expected = dict(zip(finite["epoch"], finite[column], strict=True))
                        got = board.scalars(run_id, tag) if expected else {}
                        assert got == pytest.approx(expected, rel=1e-6), (run_id, tag)
            # the ratio per epoch ends where runs.parquet's grad_ratio_final is
            final = runs.loc[run_id, "grad_ratio_final"]
            if math.isfinite(final):
                ratio = board.scalars(run_id, "grad_ratio")
                assert ratio[max(ratio)] == pytest.approx(final, rel=1e-6)
                assert ratio[0] == pytest.approx(runs.loc[run_id, "grad_ratio_init"], rel=1e-6)


def test_relative_wall_time_is_training_seconds(sweep: Path, board: Board) -> None:
    run_id = "depths/d3-w8-sigmoid-scaled_normal-s0"
    metrics = pd.read_parquet(sweep / "runs" / run_id / "metrics.parquet")
    events = board.multiplexer.Tensors(run_id, "accuracy/val")
    relative = [e.wall_time - events[0].wall_time for e in events]
    expected = (metrics["wall_s"] - metrics["wall_s"].iloc[0]).tolist()
    assert relative == pytest.approx(expected, abs=1e-3)


def test_run_hparams_leaves_out_unset_and_bookkeeping_keys() -> None:
    config = {"run": "r", "trainer_version": 2, "widths": [30, 20], "l2_n": None, "seed": 0}
    expected = {"depth": 2, "widths": "30-20", "seed": 0}
    assert run_hparams(config) == {**REMEDY_DEFAULTS, **expected}  # defaults filled in
    assert run_hparams({**config, "optimizer": "adam"})["optimizer"] == "adam"
    with pytest.raises(TensorBoardError, match="'grid'"):
        run_hparams({"grid": {"a": 1}})


def test_rewrite_replaces_the_folder(sweep: Path, tmp_path: Path) -> None:
    files = _aggregates(sweep, "depths")
    out = tmp_path / "tensorboard" / "depths"
    write_experiment(**files, out_dir=out)
    (out / "stale-run").mkdir()
    write_experiment(**files, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        Path(p).parent.name for p in files["infos"]
    )
    assert [len(list(p.iterdir())) for p in out.iterdir()] == [1] * len(files["infos"])


def test_bad_inputs_name_the_file(sweep: Path, tmp_path: Path) -> None:
    files = _aggregates(sweep, "depths")
    broken = tmp_path / "run.json"
    broken.write_text("{}")
    with pytest.raises(TensorBoardError, match=f"{broken}.*rerun its job"):
        write_experiment(**{**files, "infos": [str(broken)], "traces": files["traces"][:1]},
                         out_dir=tmp_path / "out")  # fmt: skip
    rates = _aggregates(sweep, "rates")
    other = {"infos": rates["infos"][:1], "traces": rates["traces"][:1]}
    with pytest.raises(TensorBoardError, match="no row for run 'rates/"):
        write_experiment(**{**files, **other}, out_dir=tmp_path / "out")
    with pytest.raises(TensorBoardError, match="the same runs"):
        write_experiment(**{**files, "traces": files["traces"][1:]}, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary folder left


class Server:
    """A real ``tensorboard --logdir`` process on 127.0.0.1, asked over HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=60) as response:
            return json.load(response)

    def post(self, path: str, body: dict) -> Any:
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.base + path, json.dumps(body).encode(), headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def experiment(self) -> dict:
        return self.post("/data/plugin/hparams/experiment", {"experimentName": ""})

    def session_groups(self) -> dict[str, dict]:
        request = {"experimentName": "", "allowedStatuses": ALL_STATUSES, "sliceSize": 10_000}
        groups = self.post("/data/plugin/hparams/session_groups", request)["sessionGroups"]
        return {group["name"]: group for group in groups}

    def scalars(self, run: str, tag: str) -> list[tuple[int, float]]:
        query = urllib.parse.urlencode({"run": run, "tag": tag})
        return [
            (step, value) for _, step, value in self.get(f"/data/plugin/scalars/scalars?{query}")
        ]

    def until(
        self, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 120
    ) -> Any:
        """``read()`` once ``done`` says so: TensorBoard loads and reloads in the background."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = read()
                if done(value):
                    return value
            except (urllib.error.URLError, ConnectionError):
                value = None
            if time.monotonic() > deadline:
                raise AssertionError(f"TensorBoard at {self.base} never showed it; last: {value}")
            time.sleep(1)


@contextmanager
def tensorboard(logdir: Path, log: Path) -> Iterator[Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [Path(sys.executable).with_name("tensorboard"), "--logdir", logdir]
    command += ["--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        server = Server(f"http://127.0.0.1:{port}")
        server.until(lambda: process.poll() is None and server.get("/data/plugins_listing"), bool)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def _starts(groups: dict[str, dict]) -> dict[str, float]:
    return {name: group["sessions"][0]["startTimeSecs"] for name, group in groups.items()}


@pytest.mark.slow
def test_smoke_sweep_in_tensorboard(tmp_path: Path) -> None:
    """What `tensorboard --logdir results/smoke/tensorboard` shows for the smoke sweep, and after a
    run is retrained and after the grid shrinks. Each check starts a fresh TensorBoard: a
    running one may keep a replaced run's old events when the folder is deleted and written
    again between two of its reloads (seen once on CI's loaded machine)."""
    workdir = copy_workflow(tmp_path / "work")
    smoke = ("--cores", "2", "--configfile", "config/smoke.yaml")
    snakemake(workdir, *smoke)
    results = workdir / "results/smoke"  # the sweep's folder: config/smoke.yaml's name
    runs = pd.read_parquet(results / "runs.parquet").set_index("run_id")
    metrics = pd.read_parquet(results / "metrics.parquet")
    assert len(runs) == 8

    with tensorboard(results / "tensorboard", tmp_path / "tensorboard.log") as tb:
        groups = tb.until(tb.session_groups, lambda g: len(g) == len(runs))
        assert sorted(groups) == sorted(runs.index)  # one table for the whole sweep
        experiment = tb.experiment()
        hparams = {h["name"]: h for h in experiment["hparamInfos"]}
        assert hparams["depth"]["domainDiscrete"] == [1, 4]
        assert hparams["activation"]["domainDiscrete"] == ["relu", "sigmoid"]
        assert hparams["init"]["domainDiscrete"] == ["he_normal", "scaled_normal"]
        assert [m["displayName"] for m in experiment["metricInfos"]] == METRICS
        for run_id, row in runs.iterrows():
            assert set(groups[run_id]["hparams"]) == set(hparams)
            values = {m["name"]["tag"]: m["value"] for m in groups[run_id]["metricValues"]}
            expected = {f"hparams/{name}": row[name] for name in METRICS if np.isfinite(row[name])}
            assert values == pytest.approx(expected, rel=1e-6)
            assert any("ratio" in t for t in values) == (row["depth"] > 1)  # one layer: none
        tags = tb.get("/data/plugin/scalars/tags")
        assert sorted(tags) == sorted(runs.index)
        for run_id, row in runs.iterrows():
            assert f"probe_grad_norm_bias/layer{row['depth']}" in tags[run_id]
            assert "probe_grad_norm_kernel/output" in tags[run_id]
            val_acc = metrics[metrics["run_id"] == run_id][["epoch", "val_acc"]]
            points = tb.scalars(run_id, "accuracy/val")
            assert [step for step, _ in points] == val_acc["epoch"].tolist()
            assert [v for _, v in points] == pytest.approx(val_acc["val_acc"].tolist(), rel=1e-6)

    # Retrain one run (docs/batches.md: drop its run-cache entry, force its batch): its events
    # are replaced, not added to.
    run = "smoke/d4-w16-relu-he_normal-s0"
    before = _starts(groups)
    info = results / "runs" / run / "run.json"
    shutil.rmtree(cache_entry(workdir / "results/cache", json.loads(info.read_text())["config"]))
    targets = ("results/smoke/tensorboard/smoke", "results/smoke/tensorboard/hparams-config")
    manifest = "results/smoke/batches/smoke/b000.json"  # the smoke sweep is one batch
    rerun = snakemake(workdir, *targets, *smoke, "--forcerun", manifest)
    jobs = job_stats(rerun.stdout + rerun.stderr)
    assert jobs["train"] == 1 and jobs["tensorboard_experiment"] == 1, jobs
    members = json.loads((workdir / manifest).read_text())["runs"]
    assert [m["run_id"] for m in members if m["trained"]] == [run]  # the others restored
    with tensorboard(results / "tensorboard", tmp_path / "tensorboard-2.log") as tb:
        start = info.stat().st_mtime - json.loads(info.read_text())["wall_s"]
        after = _starts(tb.until(tb.session_groups, lambda g: len(g) == len(runs)))
        assert after[run] == pytest.approx(start, abs=1e-3) and after[run] > before[run]
        steps = [step for step, _ in tb.scalars(run, "accuracy/val")]
        assert steps == [0, 1, 2, 3]  # one point per epoch
        event_files = sorted((results / "tensorboard").rglob("events.out.tfevents.*"))
        assert len(event_files) == len(runs) + 1

    # Drop half the grid: the dropped runs leave the folder and TensorBoard's table.
    config = workdir / "config" / "smoke.yaml"
    config.write_text(config.read_text().replace("[scaled_normal, he_normal]", "[he_normal]"))
    snakemake(workdir, *targets, *smoke)
    kept = sorted(r for r in runs.index if r.endswith("he_normal-s0"))
    assert sorted(
        p.name for p in (results / "tensorboard" / "smoke").iterdir() if p.is_dir()
    ) == sorted(r.split("/")[1] for r in kept)
    with tensorboard(results / "tensorboard", tmp_path / "tensorboard-3.log") as tb:
        groups = tb.until(tb.session_groups, lambda g: sorted(g) == kept)
        init = {h["name"]: h for h in tb.experiment()["hparamInfos"]}["init"]
        assert init["domainDiscrete"] == ["he_normal"]
