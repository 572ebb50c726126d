"""The smoke sweep through the SLURM profile, against a real SLURM controller.

CI (.ci/run) starts a one-node cluster on the CI machine with .ci/slurm-up.sh and sets
GRADSWEEP_REQUIRE_SLURM=1, so there these tests fail rather than skip when SLURM is missing.
Elsewhere they are skipped only where `sbatch` is absent; an `sbatch` without a controller
that answers is a failure.

The SLURM sweep and a local sweep of the same config run at the same time, each in its own
temporary copy of the repository; the SLURM run's results must equal the local ones. The
config is the smoke sweep in batches of 4 runs (train.runs_per_job): 2 train jobs, each one
SLURM job that trains 4 runs in one process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import (
    copy_checkout,
    copy_finished,
    run_file,
    snakemake,
    sweep_folder,
    without_slurm_settings,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SMOKE = ("--configfile", "config/smoke4.yaml")
# results/smoke4, the config file's name: SLURM jobs parse the workflow again and must find the
# same folder (Snakemake passes them the same --configfile)
OUT = sweep_folder(SMOKE[1])
# locally only what the comparison reads: every run and the aggregates, no figures
LOCAL = (
    f"{OUT}/runs.parquet",
    f"{OUT}/metrics.parquet",
    "--cores",
    "2",
    *SMOKE,
)
SLURM = (
    "--profile",
    "workflow/profiles/slurm",
    *SMOKE,
    "--slurm-status-command",
    "squeue",
    # poll often: jobs take seconds here (the plugin adds 10 s per poll without news)
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
    "--slurm-keep-successful-logs",
)
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)")
RUNS = sorted(
    f"d{d}-w16-{a}-{i}-s0"
    for d in (1, 4)
    for a in ("sigmoid", "relu")
    for i in ("scaled_normal", "he_normal")
)
VARYING = ("wall_s", "slurm_job_id", "host")  # differ between any two runs of a config
BATCHES = {"b000": RUNS[:4], "b001": RUNS[4:]}  # runs in sorted order, 4 per job


def write_smoke(workdir: Path, runs_per_job: int) -> Path:
    """config/smoke4.yaml: config/smoke.yaml with ``runs_per_job`` runs per train job."""
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    config["train"]["runs_per_job"] = runs_per_job
    (workdir / "config/smoke4.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def clean_env() -> dict[str, str]:
    """No site settings for the profile, and no outer SLURM job for the local run to inherit."""
    env = without_slurm_settings()
    for key in ("SLURM_JOB_ID", "SLURM_JOBID"):
        env.pop(key, None)
    return env


@pytest.fixture(scope="module")
def cluster() -> None:
    if shutil.which("sbatch") is None:
        reason = "needs SLURM: sbatch is not on PATH (CI starts one with .ci/slurm-up.sh)"
        if os.environ.get("GRADSWEEP_REQUIRE_SLURM") == "1":
            pytest.fail(f"GRADSWEEP_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60)
    if "is UP" not in ping.stdout:
        pytest.fail(
            "sbatch is on PATH but no SLURM controller answers `scontrol ping` "
            f"({(ping.stdout + ping.stderr).strip()}); start one with `bash .ci/slurm-up.sh`"
        )
    states = subprocess.run(
        ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    if not {"idle", "mixed", "allocated", "completing"} & set(states):
        pytest.fail(f"no usable SLURM node (states: {states}); run `bash .ci/slurm-up.sh`")


@pytest.fixture(scope="module")
def sweeps(cluster, tmp_path_factory) -> dict:
    """The smoke sweep through SLURM and, at the same time, locally up to the aggregates."""
    slurm_dir = write_smoke(copy_checkout(tmp_path_factory.mktemp("slurm")), 4)
    local_dir = write_smoke(copy_checkout(tmp_path_factory.mktemp("local")), 4)
    env = clean_env()

    def start(workdir: Path, args: tuple[str, ...]) -> subprocess.Popen:
        return subprocess.Popen(
            ["snakemake", *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    t0 = time.monotonic()
    slurm, local = start(slurm_dir, SLURM), start(local_dir, LOCAL)
    try:
        slurm_out, _ = slurm.communicate(timeout=1800)
        wall_s = time.monotonic() - t0
        local_out, _ = local.communicate(timeout=1800)
    finally:
        for process in (slurm, local):
            if process.poll() is None:
                process.terminate()  # Snakemake cancels its SLURM jobs (scancel)
                process.wait(timeout=120)
    print(f"\nsmoke sweep through SLURM: {wall_s:.0f} s (a local sweep ran alongside)")
    assert slurm.returncode == 0, f"SLURM sweep failed:\n{slurm_out}"
    assert local.returncode == 0, f"local sweep failed:\n{local_out}"
    return {"slurm": slurm_dir, "local": local_dir, "output": slurm_out, "wall_s": wall_s}


def run_info(workdir: Path, run: str) -> dict:
    return json.loads((workdir / f"{OUT}/runs/smoke" / run / "run.json").read_text())


def scontrol_job(job_id: str) -> dict[str, str] | None:
    """``scontrol show job`` as a dict, None once SLURM has forgotten the job (MinJobAge)."""
    result = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60
    )
    if result.returncode:
        assert "Invalid job id" in result.stderr, result.stderr
        return None
    return dict(re.findall(r"(\w+)=(\S*)", result.stdout))


def test_every_batch_ran_as_one_slurm_job(sweeps):
    workdir, output = sweeps["slurm"], sweeps["output"]
    submitted = dict(SUBMITTED.findall(output))  # SLURM job id -> its log file
    ids = {run: run_info(workdir, run)["slurm_job_id"] for run in RUNS}
    assert all(ids.values()), ids
    assert set(ids.values()) <= set(submitted), (ids, submitted)
    for batch, runs in BATCHES.items():
        (job_id,) = {ids[run] for run in runs}  # the batch's runs share one SLURM job
        # the plugin's log of the job (kept with --slurm-keep-successful-logs) names the batch
        log = Path(submitted[job_id])
        assert log.is_file() and log.name == f"{job_id}.log"
        text = log.read_text()
        assert f"batch={batch}" in text
        # the job parsed the workflow again and found this sweep's folders (sweep_name)
        assert f"{OUT}/batches/smoke/{batch}.json" in text
        assert (workdir / f"logs/{Path(OUT).name}/train/smoke/{batch}.log").is_file()
        for i, run in enumerate(runs, start=1):  # progress: which run of the batch trains
            assert f"train smoke/{batch}: run {i}/4 smoke/{run}: training" in text, text
        job = scontrol_job(job_id)  # known for MinJobAge seconds (900 on the CI cluster)
        if job is not None:
            assert job["JobState"] == "COMPLETED", job
            assert job["Comment"] == f"rule_train_wildcards_smoke_{batch}", job
            assert Path(job["WorkDir"]).resolve() == workdir.resolve(), job
            assert job["TimeLimit"] == "00:40:00", job  # train.runtime (10) x 4 runs
    assert len(set(ids.values())) == len(BATCHES), ids
    # the other jobs went to SLURM too; only `all` and the run_files copies stay local
    assert len(submitted) > len(BATCHES)
    assert "rule_run_files" not in output


def test_slurm_results_equal_a_local_run(sweeps):
    slurm, local = sweeps["slurm"], sweeps["local"]
    for run in RUNS:
        for name in ("traces.parquet", "metrics.parquet"):
            a, b = (
                pd.read_parquet(run_file(d / OUT, f"smoke/{run}", name)) for d in (slurm, local)
            )
            pd.testing.assert_frame_equal(
                a.drop(columns=["wall_s"], errors="ignore"),
                b.drop(columns=["wall_s"], errors="ignore"),
                check_exact=True,
                obj=f"{run}/{name}",
            )
        a, b = (run_info(d, run) for d in (slurm, local))
        assert a["slurm_job_id"] and b["slurm_job_id"] is None
        assert {k: v for k, v in a.items() if k not in VARYING} == {
            k: v for k, v in b.items() if k not in VARYING
        }
    for name in ("runs.parquet", "metrics.parquet"):  # the traces: each run's, above
        a, b = (pd.read_parquet(d / OUT / name) for d in (slurm, local))
        varying = [c for c in a.columns if c in VARYING]
        pd.testing.assert_frame_equal(
            a.drop(columns=varying), b.drop(columns=varying), check_exact=True, obj=name
        )


def test_grouped_train_jobs_share_slurm_jobs(sweeps, tmp_path):
    """One run per batch, --groups train=g --group-components g=2: one SLURM job per two
    batch jobs. Four runs are gone from the results and the run cache: their batches train
    them; the other four batches only restore theirs from the cache."""
    from gradsweep.batches import cache_entry

    workdir = write_smoke(copy_finished(sweeps["slurm"], tmp_path / "grouped"), 1)
    redo = RUNS[:4]
    for run in redo:
        shutil.rmtree(cache_entry(workdir / "results/cache", run_info(workdir, run)["config"]))
        shutil.rmtree(workdir / f"{OUT}/runs/smoke" / run)
        run_file(workdir / OUT, f"smoke/{run}", "traces.parquet").unlink()
    targets = [f"{OUT}/runs/smoke/{run}/run.json" for run in RUNS]
    # targets first: --group-components takes every following word as a group
    group = ("--groups", "train=g", "--group-components", "g=2", "--cores", "1")
    result = snakemake(workdir, *targets, *SLURM, *group, env=clean_env())
    submitted = SUBMITTED.findall(result.stdout + result.stderr)
    assert len(submitted) == 4, result.stdout + result.stderr  # 8 batches of one run
    ids = {run: run_info(workdir, run)["slurm_job_id"] for run in redo}
    assert set(ids.values()) <= {job_id for job_id, _ in submitted}, ids
    for job_id, _ in submitted:
        job = scontrol_job(job_id)
        if job is not None:
            assert job["JobState"] == "COMPLETED", job
            # --cores 1: sized for one train job at a time (the group's jobs run in series)
            assert job["NumCPUs"] == "1", job
    for run in RUNS:  # the same numbers as the ungrouped SLURM sweep
        for name in ("traces.parquet", "metrics.parquet"):
            a, b = (
                pd.read_parquet(run_file(d / OUT, f"smoke/{run}", name))
                for d in (workdir, sweeps["slurm"])
            )
            pd.testing.assert_frame_equal(
                a.drop(columns=["wall_s"], errors="ignore"),
                b.drop(columns=["wall_s"], errors="ignore"),
                check_exact=True,
            )
    # the four runs kept in the cache were restored, not trained again
    for run in RUNS[4:]:
        before = run_info(sweeps["slurm"], run)["slurm_job_id"]
        assert run_info(workdir, run)["slurm_job_id"] == before
