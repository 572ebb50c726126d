"""Failure modes with the real workflow: bad data, diverging runs, killed jobs, broken run
files, determinism and concurrent jobs (see issue 6).

One sweep (``sweep`` fixture, ``snakemake --cores 2``) trains the same run twice under two
experiment names (determinism), concurrently (thread pools are sampled from ``/proc`` while it
runs), next to a run that diverges; its aggregate, table and figures must show that run. A
second workdir trains the first run again and is SIGKILLed mid-training, then resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from workflow_helpers import copy_workflow, snakemake, sweep_folder

from gradsweep import data
from gradsweep.aggregate import AggregationError, aggregate
from gradsweep.batches import cache_entry, is_cached
from gradsweep.config import expand_runs
from gradsweep.io import (
    DIAGNOSTICS,
    METRICS_SCHEMA,
    TRACES_SCHEMA,
    trace_path,
    write_json,
    write_parquet,
)
from gradsweep.run import _Checkpoint

RUN = "d2-w32-sigmoid-scaled_normal-s0"
FIRST = "d1-w32-sigmoid-scaled_normal-s0"
LONG = {  # ~100 ms an epoch on digits: a kill lands mid-training
    "dataset": "digits",
    "training": {"epochs": 120},
    "grid": {"depth": [2], "width": [32], "activation": ["sigmoid"], "init": ["scaled_normal"]},
}
DIVERGE = {  # NaN within the first epoch (eta = 50 on a deep ReLU net)
    "dataset": "digits",
    "training": {"learning_rate": 50},
    "grid": {"depth": [4], "width": [16], "activation": ["relu"], "init": ["he_normal"]},
}
DIVERGED = "diverge/d4-w16-relu-he_normal-s0"
BASE = {
    "train": {"threads": 1, "mem_mb": 1000, "runtime": 10},
    "training": {"epochs": 3, "batch_size": 10, "learning_rate": 0.1, "probe_size": 200},
}
SWEEP = {**BASE, "experiments": {"resume": LONG, "again": LONG, "diverge": DIVERGE}}
OUT = sweep_folder("sweep.yaml")  # results/sweep: the config file's name
LOGS = f"logs/{Path(OUT).name}"
SWEEP_TARGETS = (
    f"{OUT}/results.md",
    f"{OUT}/figures/accuracy_depth.png",
    f"{OUT}/figures/diverge/gradients.png",
)
POOLS = ("tf_Compute", "tf_XLAEigen")  # TensorFlow's intra-op and XLA CPU thread pools


def write_config(workdir: Path, config: dict[str, Any]) -> Path:
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(config))
    return workdir


def our_processes(workdir: Path, marker: str = "") -> list[int]:
    """Processes running in ``workdir`` whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            ours = entry.name.isdigit() and os.readlink(entry / "cwd") == str(workdir)
            if ours and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def thread_sample(pid: int) -> tuple[Counter, int] | None:
    """Thread names of ``pid`` (from /proc/<pid>/task/*/comm) and its Threads: count."""
    try:
        names = Counter(
            (task / "comm").read_text().strip() for task in Path(f"/proc/{pid}/task").iterdir()
        )
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Th"))
    return names, threads


def run_files(workdir: Path, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    folder = workdir / f"{OUT}/runs" / run_id
    return (
        pd.read_parquet(trace_path(workdir / OUT, *run_id.split("/"))),
        pd.read_parquet(folder / "metrics.parquet"),
        json.loads((folder / "run.json").read_text()),
    )


def assert_same_training(a: Path, a_id: str, b: Path, b_id: str) -> None:
    """Traces and metrics bit for bit (wall_s and the run's name aside)."""
    (ta, ma, _), (tb, mb, _) = run_files(a, a_id), run_files(b, b_id)
    pd.testing.assert_frame_equal(ta.drop(columns="run_id"), tb.drop(columns="run_id"), rtol=0)
    drop = ["run_id", "wall_s"]
    pd.testing.assert_frame_equal(ma.drop(columns=drop), mb.drop(columns=drop), rtol=0)
    assert len(ta) and len(ma) == LONG["training"]["epochs"] + 1


# ------------------------------------------------------------------------- the sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict[str, Any]:
    """Run the sweep on 2 cores, sampling the thread pools of every train job as it runs."""
    workdir = write_config(copy_workflow(tmp_path_factory.mktemp("sweep")), SWEEP)
    cmd = ["snakemake", *SWEEP_TARGETS, "--cores", "2", "--configfile", "sweep.yaml"]
    proc = subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pools: dict[int, Counter] = {}  # the largest count of each pool seen, per job
    threads: dict[int, int] = {}  # the largest Threads: seen, per job
    together: list[dict[int, Counter]] = []  # samples with two or more jobs running TensorFlow
    while proc.poll() is None:
        now = {}
        for pid in our_processes(workdir, "train.py"):
            if (sample := thread_sample(pid)) and any(sample[0][p] for p in POOLS):
                now[pid] = sample[0]
                pools[pid] = pools.get(pid, Counter()) | sample[0]
                threads[pid] = max(threads.get(pid, 0), sample[1])
        if len(now) > 1:
            together.append(now)
        time.sleep(0.2)
    output = proc.stdout.read()
    assert proc.returncode == 0, output
    return {"workdir": workdir, "pools": pools, "threads": threads, "together": together}


@pytest.mark.slow
def test_diverged_run_is_a_result_and_the_sweep_completes(sweep):
    workdir = sweep["workdir"]
    traces, metrics, info = run_files(workdir, DIVERGED)
    assert info["status"] == "diverged"
    where = info["diverged"]
    assert where["epoch"] == 1 and where["step"] >= 1 and "non-finite" in where["reason"]
    # traces up to the bad step: the probe at initialisation and every step until it
    steps = traces[traces["source"] == "step"]
    assert set(traces.loc[traces["source"] == "probe", "epoch"]) >= {0}
    assert sorted(steps["step"].unique()) == list(range(1, where["step"] + 1))
    assert not np.isfinite(steps.loc[steps["step"] == where["step"], "grad_norm"]).all()
    assert list(metrics["epoch"]) == [0, 1]
    for run_id in (f"resume/{RUN}", f"again/{RUN}"):
        assert run_files(workdir, run_id)[2]["status"] == "ok"

    runs = pd.read_parquet(workdir / f"{OUT}/runs.parquet").set_index("run_id")
    assert len(runs) == 3 and runs.loc[DIVERGED, "status"] == "diverged"
    # the accuracy of a net with non-finite weights is no result: shown as missing
    assert runs.loc[DIVERGED, ["best_val_acc", "test_acc", "final_test_acc"]].isna().all()
    assert runs.loc[f"resume/{RUN}", "best_val_acc"] > 0.5
    all_traces = pd.read_parquet(workdir / f"{OUT}/traces", columns=["run_id"])
    assert set(all_traces["run_id"]) == set(runs.index)

    table = (workdir / f"{OUT}/results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 4 ")]
    assert len(rows) == 1 and "diverged" in rows[0] and "—" in rows[0]
    per_seed = (workdir / f"{OUT}/results_seeds.md").read_text()
    rows = [line for line in per_seed.splitlines() if line.startswith("| 4 ")]
    assert len(rows) == 1 and "| diverged |" in rows[0]
    for png in SWEEP_TARGETS[1:]:
        assert (workdir / png).stat().st_size > 10_000
    # the summary at the end counts the diverged run (and the learned ones apart from it)
    stuck = int(((runs["best_val_acc"] < 0.2) & (runs["status"] != "diverged")).sum())
    counts = f"3 runs: 3 trained, 0 from the run cache, 0 unchanged, 0 failed; 1 diverged, {stuck}"
    summary = (workdir / f"{OUT}/summary.md").read_text()
    assert f"{counts} never learned." in summary.splitlines()
    (line,) = [v for v in summary.splitlines() if v.startswith("- diverge: ")]
    assert "1/1 diverged" in line and line.endswith("1 run at the end: 1 diverged")


@pytest.mark.slow
def test_same_config_and_seed_train_bit_identically(sweep):
    workdir = sweep["workdir"]
    assert_same_training(workdir, f"resume/{RUN}", workdir, f"again/{RUN}")


@pytest.mark.slow
def test_concurrent_jobs_keep_to_their_threads_and_their_files(sweep):
    pools, together = sweep["pools"], sweep["together"]
    assert len(pools) == 3, pools  # every train job was sampled while running TensorFlow
    assert together, "no two train jobs ran at once"
    for counts in pools.values():  # threads: 1 for every job
        assert all(1 <= counts[p] <= 1 for p in POOLS), counts
    for sample in together:  # never more pool threads than the 2 cores
        assert all(sum(c[p] for c in sample.values()) <= 2 for p in POOLS), sample
    print(f"pool threads per job: {[{p: c[p] for p in POOLS} for c in pools.values()]}")
    print(f"Threads: per job {sorted(sweep['threads'].values())}, {len(together)} 2-job samples")
    workdir = sweep["workdir"]
    assert not list((workdir / "results").rglob("*.tmp"))
    assert not (workdir / f"{OUT}/checkpoints").exists() or not any(
        (workdir / f"{OUT}/checkpoints").rglob("*.parquet")
    )
    for run_id in (f"resume/{RUN}", f"again/{RUN}", DIVERGED):
        traces, metrics, info = run_files(workdir, run_id)
        assert info["run_id"] == run_id and info["threads"] == 1
        assert set(traces["run_id"]) == {run_id} == set(metrics["run_id"])


# ------------------------------------------------------------------------- kill and resume


@pytest.mark.slow
def test_killed_job_resumes_from_its_checkpoint_with_identical_results(sweep, tmp_path):
    """A batch of two runs (FIRST, then RUN) killed during RUN: FIRST's results survive in the
    run cache (Snakemake deleted nothing of it), and the rerun restores FIRST untrained and
    resumes RUN from its checkpoint, with the results of an uninterrupted run alone."""
    two = {**LONG, "grid": {**LONG["grid"], "depth": [1, 2]}}  # FIRST sorts before RUN
    workdir = write_config(copy_workflow(tmp_path), {**BASE, "experiments": {"resume": two}})
    target = f"{OUT}/runs/resume/{RUN}/run.json"
    args = (target, "--cores", "1", "--configfile", "sweep.yaml")
    state = workdir / f"{OUT}/checkpoints/resume/{RUN}/state.json"
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(
        ["snakemake", *args], cwd=workdir, stdout=log, stderr=log, start_new_session=True
    )
    killed_at = None
    while proc.poll() is None and killed_at is None:
        try:
            epoch = json.loads(state.read_text())["epoch"]
        except (OSError, ValueError):
            epoch = 0
        if epoch >= 2:
            os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, mid-training
            killed_at = epoch
        time.sleep(0.02)
    proc.wait()
    log.close()
    assert killed_at is not None, (tmp_path / "killed.log").read_text()
    for _ in range(50):  # the job dies with its process group
        if not our_processes(workdir):
            break
        time.sleep(0.1)
    assert not our_processes(workdir)

    # nothing under its final name that could read as complete; the checkpoint is there
    out = workdir / f"{OUT}/runs/resume/{RUN}"
    for name in ("metrics.parquet", "run.json"):
        assert not (out / name).exists(), name
    assert not trace_path(workdir / OUT, "resume", RUN).exists()
    assert not (workdir / f"{OUT}/batches/resume/b000.json").exists()
    # FIRST, finished before the kill, is in the run cache
    first = {**expand_runs(yaml.safe_load((workdir / "sweep.yaml").read_text()))[0]}
    assert first["run"] == FIRST
    assert is_cached(cache_entry(workdir / "results/cache", first))
    assert json.loads(state.read_text())["epoch"] >= killed_at
    for part in (workdir / "results").rglob("*.parquet"):  # checkpoint parts: each one whole
        assert pq.read_table(part).num_rows > 0, part

    snakemake(workdir, "--unlock", "--configfile", "sweep.yaml")
    snakemake(workdir, *args, "--rerun-incomplete")
    text = (workdir / f"{LOGS}/train/resume/{RUN}.log").read_text()
    resumed = [line for line in text.splitlines() if "resumed from the checkpoint" in line]
    assert len(resumed) == 1 and int(resumed[0].split()[-1]) >= killed_at, text
    batch_log = (workdir / f"{LOGS}/train/resume/b000.log").read_text()
    assert f"run 1/2 resume/{FIRST}: in the run cache, not trained" in batch_log, batch_log
    assert f"run 2/2 resume/{RUN}: training" in batch_log
    manifest = json.loads((workdir / f"{OUT}/batches/resume/b000.json").read_text())
    assert [m["trained"] for m in manifest["runs"]] == [False, True]
    assert_same_training(workdir, f"resume/{RUN}", sweep["workdir"], f"resume/{RUN}")
    assert run_files(workdir, f"resume/{RUN}")[2]["status"] == "ok"
    assert not (workdir / f"{OUT}/checkpoints/resume/{RUN}").exists()
    assert not list((workdir / "results").rglob("*.tmp"))
    print(f"killed after the checkpoint of epoch {killed_at}; {resumed[0]}")


def test_checkpoint_with_a_lost_part_or_another_config_is_not_resumed(tmp_path):
    ckpt = _Checkpoint(tmp_path, "abc")
    assert ckpt.last_epoch() is None
    for e in range(3):
        for kind in ("traces", "metrics"):
            (tmp_path / f"{kind}-{e:05d}.parquet").write_bytes(b"x")
    (tmp_path / "weights-00002.index").write_bytes(b"x")
    write_json({"epoch": 2, "cache_key": "abc"}, ckpt.state)
    assert ckpt.last_epoch() == 2
    assert _Checkpoint(tmp_path, "other").last_epoch() is None
    (tmp_path / "traces-00001.parquet").unlink()
    assert ckpt.last_epoch() is None
    ckpt.state.write_text("{")
    assert ckpt.last_epoch() is None


# ------------------------------------------------------------------------- bad data


@pytest.mark.slow
def test_corrupt_prepared_data_fails_its_job_naming_the_file_and_the_fix(tmp_path):
    workdir = write_config(copy_workflow(tmp_path), {**BASE, "experiments": {"resume": LONG}})
    prepared = workdir / "resources/data/digits.npz"
    prepared.parent.mkdir(parents=True)
    good = tmp_path / "good.npz"
    data.prepare("digits", [], good)
    prepared.write_bytes(good.read_bytes()[:100_000])  # cut short, as by a full disk
    args = (f"{OUT}/runs/resume/{RUN}/run.json", "--cores", "1", "--configfile", "sweep.yaml")
    result = snakemake(workdir, *args, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "resources/data/digits.npz" in output and "Fix: delete the file and re-run" in output
    assert not (workdir / f"{OUT}/runs/resume" / RUN / "run.json").exists()
    # the summary at the end (on the terminal and in results/sweep/summary.md): the failed job, its
    # log and the error its log ends with, the run that failed, and the command to resume
    summary = (workdir / f"{OUT}/summary.md").read_text()
    assert "FAILED, a job did not complete." in summary
    assert "1 run: 0 trained, 0 from the run cache, 0 unchanged, 1 failed;" in summary
    job_log = f"{LOGS}/train/resume/b000.log"
    assert f"- rule `train` (experiment=resume, batch=b000): log `{job_log}`" in summary
    last = [line for line in (workdir / job_log).read_text().splitlines() if line.strip()][-1]
    assert last.startswith("RuntimeError: 1 of 1 runs of this batch failed")
    assert f"  > {last}" in summary.splitlines()
    # the terminal has the summary without the job log's last line, which Snakemake printed
    # with the whole log just before (show-failed-logs): the error shows once
    terminal = "\n".join(line for line in summary.splitlines() if line != f"  > {last}")
    assert terminal in output and output.count(last) == 1
    assert f"- run `resume/{RUN}` failed: log `{LOGS}/train/resume/{RUN}.log`" in summary
    assert "DataError: resources/data/digits.npz: unreadable or corrupt .npz" in summary
    resume = summary.split("To resume")[1].splitlines()[2].strip()
    assert resume == "snakemake " + " ".join(args)


def test_prepared_data_with_a_flipped_byte_is_rejected(tmp_path):
    path = tmp_path / "digits.npz"
    data.prepare("digits", [], path)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # inside x_train: only the zip CRC can tell
    path.write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match="Fix:") as err:
        data.load_prepared(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value.__cause__, zipfile.BadZipFile)


# ------------------------------------------------------------------------- aggregation


def fake_run(folder: Path, run_id: str = "exp/r") -> dict[str, Path]:
    """Small but complete per-run files (depth 1: layers 1 and 2), as train_run writes them."""
    rows = [
        {"run_id": run_id, "epoch": e, "step": 10 * e, "layer": layer, "param": param,
         "grad_norm": 1.0 / layer, "source": "probe"} | dict.fromkeys(DIAGNOSTICS, np.nan)
        for e in (0, 1) for layer in (1, 2) for param in ("kernel", "bias")
    ]  # fmt: skip
    metrics = [
        {"run_id": run_id, "epoch": e, "step": 10 * e, "wall_s": float(e)}
        | {f"{s}_{w}": 0.5 for s in ("train", "val", "test") for w in ("loss", "acc")}
        for e in (0, 1)
    ]
    config = {"dataset": "digits", "widths": [8], "activation": "relu", "init": "he_normal",
              "seed": 0, "epochs": 1, "learning_rate": 0.1, "batch_size": 10}  # fmt: skip
    paths = {
        "info": folder / "run.json",
        "traces": folder / "traces.parquet",
        "metrics": folder / "metrics.parquet",
    }
    traces = pd.DataFrame(rows).reindex(columns=TRACES_SCHEMA.names)  # no update norms: NaN
    write_parquet(traces, paths["traces"], TRACES_SCHEMA)
    write_parquet(pd.DataFrame(metrics), paths["metrics"], METRICS_SCHEMA)
    info = {"run_id": run_id, "experiment": run_id.split("/")[0], "run": run_id.split("/")[1],
            "config": config, "status": "ok", "diverged": None, "wall_s": 1.0}  # fmt: skip
    write_json(info, paths["info"])
    return paths


def run_aggregate(tmp_path: Path, runs: list[dict[str, Path]]) -> pd.DataFrame:
    out = tmp_path / "out"
    return aggregate(
        [str(r["info"]) for r in runs],
        [str(r["traces"]) for r in runs],
        [str(r["metrics"]) for r in runs],
        out / "runs.parquet",
        out / "metrics.parquet",
    )


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _drop_status(path: Path) -> None:
    info = json.loads(path.read_text())
    del info["status"]
    path.write_text(json.dumps(info))


def _text_norms(path: Path) -> None:
    table = pq.read_table(path).to_pandas()
    table["grad_norm"] = "big"
    table.to_parquet(path)


def _other_run(path: Path) -> None:
    table = pq.read_table(path).to_pandas()
    table["run_id"] = "exp/someone-else"
    table.to_parquet(path)


BREAKAGES = {
    "traces truncated": ("traces", _truncate),
    "metrics missing": ("metrics", Path.unlink),
    "run.json truncated": ("info", _truncate),
    "run.json without status": ("info", _drop_status),
    "traces of the wrong type": ("traces", _text_norms),
    "metrics of another run": ("metrics", _other_run),
}


def test_aggregate_reads_good_runs(tmp_path):
    runs = run_aggregate(tmp_path, [fake_run(tmp_path / f"r{i}", f"exp/r{i}") for i in (1, 2)])
    assert list(runs["run_id"]) == ["exp/r1", "exp/r2"]


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_aggregate_names_a_broken_run_file_and_writes_nothing(tmp_path, breakage):
    good, bad = fake_run(tmp_path / "good", "exp/good"), fake_run(tmp_path / "bad", "exp/bad")
    which, damage = BREAKAGES[breakage]
    damage(bad[which])
    with pytest.raises(AggregationError) as err:
        run_aggregate(tmp_path, [good, bad])
    assert str(bad[which]) in str(err.value) and "rerun its job" in str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
