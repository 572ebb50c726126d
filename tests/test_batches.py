"""Batches of runs (gradsweep.batches, gradsweep.run.train_batch): planning, the run cache,
and results bit for bit equal to runs trained alone, each in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gradsweep import data
from gradsweep.batches import (
    CACHE_FILES,
    SECONDS_PER_JOB,
    cache_entry,
    cache_key,
    estimate_seconds,
    is_cached,
    plan_batches,
    publish,
)
from gradsweep.config import expand_runs
from gradsweep.io import METRICS_SCHEMA, TRACES_SCHEMA, write_json, write_parquet


def digits_runs(epochs: int = 5, **grid) -> list[dict]:
    grid = {
        "depth": [1, 3],
        "width": [16],
        "activation": ["sigmoid", "relu"],
        "init": ["scaled_normal", "he_normal"],
        "seed": [0, 1],
        **grid,
    }
    config = {
        "training": {"epochs": epochs, "probe_size": 100},
        "experiments": {"a": {"dataset": "digits", "grid": grid}},
    }
    return expand_runs(config)


def test_every_run_is_in_one_batch_in_sorted_order():
    runs = digits_runs()
    for kwargs in ({}, {"runs_per_job": 3}, {"seconds_per_job": 5.0}, {"runs_per_job": 1}):
        batches = plan_batches(runs, **kwargs)
        names = [name for (_, _), members in sorted(batches.items()) for name in members]
        assert names == sorted(r["run"] for r in runs), kwargs
        assert [b for _, b in sorted(batches)] == [f"b{i:03d}" for i in range(len(batches))]
    assert [len(m) for m in plan_batches(runs, runs_per_job=3).values()] == [3, 3, 3, 3, 3, 1]
    assert all(len(m) == 1 for m in plan_batches(runs, runs_per_job=1).values())


def test_short_runs_share_a_job_and_long_runs_get_their_own():
    short = digits_runs()  # 16 runs of ~1 s: one job at the default target
    assert len(plan_batches(short)) == 1
    long = digits_runs(epochs=5000)
    assert all(estimate_seconds(r) > SECONDS_PER_JOB for r in long)
    assert all(len(m) == 1 for m in plan_batches(long).values())
    # a target of a few runs' worth: batches of about that many estimated seconds
    target = 4 * estimate_seconds(short[0])
    sizes = [len(m) for m in plan_batches(short, seconds_per_job=target).values()]
    assert max(sizes) <= 4 and sum(sizes) == 16 and len(sizes) >= 4


def test_experiments_are_batched_apart():
    runs = expand_runs(
        {
            "experiments": {
                name: {
                    "dataset": "digits",
                    "grid": {
                        "depth": [1],
                        "width": [8],
                        "activation": ["relu"],
                        "init": ["he_normal"],
                    },
                }
                for name in ("x", "y")
            }
        }
    )
    assert plan_batches(runs) == {("x", "b000"): [runs[0]["run"]], ("y", "b000"): [runs[1]["run"]]}


def test_cache_key_ignores_the_name_but_not_the_experiment_or_the_trainer():
    run = digits_runs()[0]
    assert cache_key({**run, "run": "renamed"}) == cache_key(run)
    assert cache_key({**run, "experiment": "b"}) != cache_key(run)
    assert cache_key({**run, "trainer_version": run["trainer_version"] + 1}) != cache_key(run)
    assert cache_key({**run, "learning_rate": 0.2}) != cache_key(run)


def fake_entry(entry: Path, run_id: str) -> None:
    traces = pd.DataFrame(
        {"run_id": [run_id] * 2, "epoch": [0, 0], "step": [0, 0], "layer": [1, 1],
         "param": ["kernel", "bias"], "grad_norm": [1.0, 2.0], "source": ["probe"] * 2}
    )  # fmt: skip
    for column in set(TRACES_SCHEMA.names) - set(traces):  # diagnostics, updates: none here
        traces[column] = float("nan")
    metrics = pd.DataFrame(
        {"run_id": [run_id], "epoch": [0], "step": [0], "wall_s": [0.5]}
        | {f"{s}_{w}": [0.5] for s in ("train", "val", "test") for w in ("loss", "acc")}
    )
    write_parquet(traces, entry / "traces.parquet", TRACES_SCHEMA)
    write_parquet(metrics, entry / "metrics.parquet", METRICS_SCHEMA)
    experiment, run = run_id.split("/")
    info = {
        "run_id": run_id,
        "experiment": experiment,
        "run": run,
        "config": {"run": run},
        "status": "ok",
        "wall_s": 1.0,
    }
    write_json(info, entry / "run.json")


def test_publish_links_a_cached_run_and_renames_a_renamed_one(tmp_path):
    entry = tmp_path / "cache/a/0123"
    fake_entry(entry, "a/old-name")
    assert is_cached(entry)
    same = tmp_path / "runs/a/old-name"
    publish(entry, "a/old-name", same)
    for name in ("traces.parquet", "metrics.parquet", "run.json"):
        assert (same / name).read_bytes() == (entry / name).read_bytes()
    renamed = tmp_path / "runs/a/new-name"
    publish(entry, "a/new-name", renamed)
    assert set(pd.read_parquet(renamed / "traces.parquet")["run_id"]) == {"a/new-name"}
    assert set(pd.read_parquet(renamed / "metrics.parquet")["run_id"]) == {"a/new-name"}
    info = json.loads((renamed / "run.json").read_text())
    assert (info["run_id"], info["run"], info["config"]["run"]) == ("a/new-name",) + 2 * (
        "new-name",
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(renamed / "traces.parquet").drop(columns="run_id"),
        pd.read_parquet(entry / "traces.parquet").drop(columns="run_id"),
    )
    (entry / "run.json").unlink()  # incomplete: the error names the fix
    with pytest.raises(FileNotFoundError, match="Fix: delete the manifest"):
        publish(entry, "a/old-name", tmp_path / "again")


def test_a_run_two_sweeps_share_is_linked_once_then_copied(tmp_path):
    """The first sweep's folder hard-links the cache entry; a second sweep's gets copies, so its
    fresh mtimes leave the first's files (and its aggregates' freshness) alone."""
    entry = tmp_path / "cache/a/0123"
    fake_entry(entry, "a/old-name")
    first, second = (tmp_path / f"results/{s}/runs/a/old-name" for s in ("one", "two"))
    publish(entry, "a/old-name", first)
    old = {name: (first / name).stat().st_mtime_ns - 10**9 for name in CACHE_FILES}
    for name, mtime in old.items():
        os.utime(first / name, ns=(mtime, mtime))
    publish(entry, "a/old-name", second)
    for name in CACHE_FILES:
        assert (first / name).samefile(entry / name)  # linked
        assert not (second / name).samefile(entry / name)  # copied
        assert (second / name).read_bytes() == (entry / name).read_bytes()
        assert (first / name).stat().st_mtime_ns == old[name]
        assert (second / name).stat().st_mtime_ns > old[name]
    publish(entry, "a/old-name", first)  # put in place again: still the one link
    assert all((first / name).samefile(entry / name) for name in CACHE_FILES)


def test_an_entry_from_before_the_update_split_reads_with_it_empty(tmp_path):
    """A cache entry trained before issue 24's trace columns (``decay_norm``,
    ``grad_step_norm``) is not retrained: published under its own name (linked) or another
    (rewritten), and read by aggregation, its traces get them empty and keep the rest."""
    from gradsweep.aggregate import _read_table

    entry = tmp_path / "cache/a/0123"
    fake_entry(entry, "a/old-name")
    split = ["decay_norm", "grad_step_norm"]
    before = pd.read_parquet(entry / "traces.parquet").drop(columns=split)
    before.to_parquet(entry / "traces.parquet")  # the columns as they were before issue 24
    publish(entry, "a/old-name", tmp_path / "runs/a/old-name")
    publish(entry, "a/new-name", tmp_path / "runs/a/new-name")
    renamed = pd.read_parquet(tmp_path / "runs/a/new-name/traces.parquet")
    assert list(renamed.columns) == TRACES_SCHEMA.names and renamed[split].isna().all().all()
    linked = _read_table(tmp_path / "runs/a/old-name/traces.parquet", TRACES_SCHEMA).to_pandas()
    assert list(linked.columns) == TRACES_SCHEMA.names and linked[split].isna().all().all()
    pd.testing.assert_frame_equal(linked.drop(columns=split), before[linked.columns.drop(split)])


BATCH = r"""
import json, sys
from pathlib import Path
from gradsweep import run
runs, root, which = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
lines = []
if which == "batch":
    try:
        run.train_batch(runs, data=root / "digits.npz", manifest=root / "batch.json",
                        cache=root / "cache", checkpoints=root / "ckpt", logs=root / "logs",
                        progress=lines.append)
    except RuntimeError as error:
        lines.append(f"RAISED {error}")
    traces = [t.train_epoch.experimental_get_tracing_count() for _, t, _ in run._COMPILED.values()]
    print(json.dumps({"lines": lines, "compiled": len(run._COMPILED), "traces": traces}))
else:
    for cfg in runs:
        run.train_run(cfg, data=root / "digits.npz", out_dir=root / "alone" / cfg["run"])
"""


def python(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", BATCH, *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_batch_trains_what_is_missing_and_equals_runs_trained_alone(tmp_path):
    data.prepare("digits", [], tmp_path / "digits.npz")
    # four runs of one shape (init and seed differ: one compiled epoch for all four), then a
    # broken one, one that diverges (eta = 50 on a deep ReLU net), then a run of another shape
    runs = digits_runs(epochs=2, depth=[1], activation=["sigmoid"])
    broken = {**runs[-1], "run": "zz-broken", "activation": "no_such_activation"}
    (diverging,) = digits_runs(
        epochs=2, depth=[4], activation=["relu"], seed=[0], init=["he_normal"], learning_rate=[50]
    )
    other = digits_runs(epochs=2, depth=[2], activation=["relu"], seed=[0], init=["he_normal"])
    batch = [*runs, broken, diverging, *other]
    out = json.loads(python(json.dumps(batch), str(tmp_path), "batch").splitlines()[-1])
    lines = [line for line in out["lines"] if line.startswith(("run ", "RAISED"))]
    assert lines[:4] == [f"run {i}/7 a/{r['run']}: training" for i, r in enumerate(runs, 1)]
    assert lines[4] == "run 5/7 a/zz-broken: training"
    assert lines[5].startswith("run 5/7 a/zz-broken FAILED") and "no_such_activation" in lines[5]
    assert lines[6] == f"run 6/7 a/{diverging['run']}: training"
    assert lines[7] == f"run 7/7 a/{other[0]['run']}: training"
    assert lines[-1].startswith("RAISED 1 of 7 runs of this batch failed: a/zz-broken")
    assert not (tmp_path / "batch.json").exists()  # the batch failed: no manifest
    # the four runs of one shape were traced once: the later three reused the compiled epoch
    assert out["compiled"] == 3 and sorted(out["traces"]) == [1, 1, 1]
    # the diverged run is a result, as before, and its batch-mate after it trained
    status = json.loads((cache_entry(tmp_path / "cache", diverging) / "run.json").read_text())
    assert status["status"] == "diverged"
    for cfg in [*runs, diverging, *other]:
        assert is_cached(cache_entry(tmp_path / "cache", cfg))
        log = (tmp_path / "logs/a" / f"{cfg['run']}.log").read_text()
        assert f"a/{cfg['run']} epoch 1/2" in log

    # each run alone, in a fresh process: the same numbers, bit for bit
    python(json.dumps([runs[-1], other[0]]), str(tmp_path), "alone")
    for cfg in (runs[-1], other[0]):
        for name in ("traces.parquet", "metrics.parquet"):
            a = pd.read_parquet(cache_entry(tmp_path / "cache", cfg) / name)
            b = pd.read_parquet(tmp_path / "alone" / cfg["run"] / name)
            pd.testing.assert_frame_equal(
                a.drop(columns="wall_s", errors="ignore"),
                b.drop(columns="wall_s", errors="ignore"),
                check_exact=True,
            )

    # the batch again, the broken run fixed (dropped): nothing is trained, the manifest says so
    good = [*runs, diverging, *other]
    out = json.loads(python(json.dumps(good), str(tmp_path), "batch").splitlines()[-1])
    assert all("in the run cache, not trained" in line for line in out["lines"]), out["lines"]
    assert out["compiled"] == 0  # TensorFlow never set up a net
    manifest = json.loads((tmp_path / "batch.json").read_text())
    assert [m["trained"] for m in manifest["runs"]] == [False] * 6


def test_remedies_cost_more_per_step_in_the_estimate():
    """Adam and layer norm make a step dearer (benchmarks/README.md); a default run's
    estimate is what it was before the remedies existed."""
    (run,) = digits_runs(depth=[3], activation=["sigmoid"], init=["scaled_normal"], seed=[0])
    plain = estimate_seconds(run)
    assert estimate_seconds({**run, "optimizer": "sgd"}) == plain
    assert estimate_seconds({**run, "optimizer": "momentum"}) > plain
    assert estimate_seconds({**run, "optimizer": "adam"}) > estimate_seconds(
        {**run, "optimizer": "momentum"}
    )
    assert estimate_seconds({**run, "normalization": "layer_norm"}) > plain
