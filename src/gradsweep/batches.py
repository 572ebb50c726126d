"""Batches of runs and the run cache: one ``train`` job trains a batch of runs in one process.

Planned when Snakemake parses the workflow (no TensorFlow here): each experiment's runs, in
sorted name order, are packed into batches of about ``seconds_per_job`` estimated seconds of
training, or of exactly ``runs_per_job`` runs when the config sets it. A run that alone takes
longer than the target gets a job of its own. Sorted order keeps runs of one net shape (those
that differ only in init or seed) together, so a batch reuses their compiled functions.

Each finished run goes to the run cache, ``results/cache/<experiment>/<key>/`` (:data:`RUN_CACHE`,
shared by every sweep), keyed by a hash of its config (``TRAINER_VERSION`` included, the run's
name left out); a batch job trains only members the cache lacks, and a small local job links
each run's files from the cache into ``results/<sweep>/runs/<experiment>/<run>/`` and its
traces to ``results/<sweep>/traces/experiment=<experiment>/<run>.parquet``. See
docs/batches.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gradsweep.config import expand_runs, setting
from gradsweep.data import spec
from gradsweep.io import (
    METRICS_SCHEMA,
    TRACES_SCHEMA,
    atomic_path,
    conform_traces,
    parquet_options,
    read_run_info,
    write_json,
    write_parquet,
)
from gradsweep.settings import digest

# Target estimated seconds of training per job when the config sets neither train.runs_per_job
# nor train.seconds_per_job: about 6x a job's start-up (~9.5 s, benchmarks/README.md), so
# start-up is a small share, while a sweep still makes several jobs to spread over the cores.
SECONDS_PER_JOB = 60.0

# Cost model of one run on one CPU thread, set by hand from benchmarks/README.md's numbers
# (idle machine): a fixed cost per run inside a batch (net set-up, epoch 0, files; plus
# tracing and XLA compiling when its shape is new: ~0.3 s reused, ~2 s new), per epoch (probe,
# diagnostics, checkpoint; a digits d4-w16 epoch is ~0.02 s), per SGD step, and multiply-adds:
# 3 per weight and image for a training step (784-100x4: model 159 µs, measured 134 µs;
# 784-2048-1024-512-256: 6.6 ms vs 7.5 ms), 1 for evaluating an image. Only relative sizes
# matter much: they decide which runs share a job.
RUN_S = 1.0
EPOCH_S = 0.02
STEP_S = 25e-6
TRAIN_MACS_PER_S = 20e9
EVAL_MACS_PER_S = 50e9
# The remedies (issue 15), measured interleaved on an 8 x 100 sigmoid net at batch 10
# (benchmarks/README.md): the optimizer's work per weight and step, in multiply-add
# equivalents beside the 3 x batch of the gradient (momentum x1.7, Adam x2.4 the SGD step),
# and normalisation as a factor on the step (batch norm ~1.0, layer norm ~1.4).
OPTIMIZER_MACS = {"sgd": 0.0, "momentum": 20.0, "adam": 40.0}
NORMALIZATION_STEP = {"none": 1.0, "batch_norm": 1.1, "layer_norm": 1.4}
INPUT_SIZES = {"mnist": 784, "fashion_mnist": 784, "digits": 64}
ALL_IMAGES = {"mnist": 70_000, "fashion_mnist": 70_000, "digits": 1_797}  # train + val + test

CACHE_FILES = ("traces.parquet", "metrics.parquet", "run.json")  # run.json is written last
# the run cache: one for every sweep (each sweep's own outputs are under results/<sweep>/), so a
# sweep restores the runs an earlier sweep trained
RUN_CACHE = "results/cache"


def cache_key(cfg: Mapping[str, Any]) -> str:
    """What training depends on: the whole config except the run's name, so a run renamed
    (another key now varies in its experiment) is restored, not retrained."""
    return digest({k: v for k, v in cfg.items() if k != "run"})[:16]


def cache_entry(root: str | Path, cfg: Mapping[str, Any]) -> Path:
    return Path(root) / cfg["experiment"] / cache_key(cfg)


def is_cached(entry: Path) -> bool:
    return all((entry / name).is_file() for name in CACHE_FILES)


def estimate_seconds(cfg: Mapping[str, Any]) -> float:
    """Rough seconds to train ``cfg`` inside a batch on one thread (only relative sizes matter)."""
    dataset = cfg["dataset"]
    sizes = [INPUT_SIZES[dataset], *cfg["widths"], 10]
    weights = sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise(sizes))
    n_train = cfg["train_subset"] or spec(dataset).n_train
    n_eval = ALL_IMAGES[dataset] - spec(dataset).n_train + n_train
    steps = n_train // cfg["batch_size"]
    macs = 3 * cfg["batch_size"] + OPTIMIZER_MACS[setting(cfg, "optimizer")]
    step_s = (STEP_S + macs * weights / TRAIN_MACS_PER_S) * NORMALIZATION_STEP[
        setting(cfg, "normalization")
    ]
    epoch_s = EPOCH_S + n_eval * weights / EVAL_MACS_PER_S
    return RUN_S + (cfg["epochs"] + 1) * epoch_s + cfg["epochs"] * steps * step_s


def plan_batches(
    runs: Iterable[Mapping[str, Any]],
    runs_per_job: int | None = None,
    seconds_per_job: float | None = None,
) -> dict[tuple[str, str], list[str]]:
    """``{(experiment, batch id): [run names]}``; ids ``b000``, ``b001``, … per experiment."""
    by_experiment: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        by_experiment.setdefault(run["experiment"], []).append(run)
    target = seconds_per_job or SECONDS_PER_JOB
    batches: dict[tuple[str, str], list[str]] = {}
    for experiment in sorted(by_experiment):
        packed: list[list[str]] = []
        load = 0.0
        for run in sorted(by_experiment[experiment], key=lambda r: r["run"]):
            cost = estimate_seconds(run)
            if runs_per_job:
                full = not packed or len(packed[-1]) >= runs_per_job
            else:
                full = not packed or load + cost > target
            if full:
                packed.append([])
                load = 0.0
            packed[-1].append(run["run"])
            load += cost
        for index, names in enumerate(packed):
            batches[(experiment, f"b{index:03d}")] = names
    return batches


def sweep_batches(
    config: Mapping[str, Any],
) -> tuple[list[dict], dict[tuple[str, str], list[str]]]:
    """A validated config's runs (gradsweep.config.expand_runs) and their batches
    (:func:`plan_batches` with the config's ``train.runs_per_job`` / ``seconds_per_job``):
    the Snakefile plans its train jobs with it, and each train job finds its members with it."""
    runs = expand_runs(config)
    train = config.get("train") or {}
    return runs, plan_batches(runs, train.get("runs_per_job"), train.get("seconds_per_job"))


def batch_members(config: Mapping[str, Any], experiment: str, batch: str) -> list[dict]:
    """The configs of one batch's runs, in training order: what its train job trains."""
    runs, batches = sweep_batches(config)
    by_name = {run["run"]: run for run in runs if run["experiment"] == experiment}
    return [by_name[name] for name in batches[(experiment, batch)]]


def members_digest(configs: Iterable[Mapping[str, Any]]) -> str:
    """A train job's params: one hash of its members' whole configs, in training order. A
    changed, added, removed or renamed member changes it, so Snakemake reruns the batch (and
    reports a 64-character change, not every member's config)."""
    return digest([dict(cfg) for cfg in configs])


def _linked(source: Path, target: Path) -> bool:
    """Hard-link ``target`` to ``source``; False where the file system refuses (another one)."""
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy where ``source`` is linked elsewhere
    already, or across file systems), with a fresh mtime."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    if source.stat().st_nlink > 1 or not _linked(source, target):
        shutil.copyfile(source, target)
    os.utime(target)


def _write_traces(source: Path, target: Path, run_id: str) -> None:
    """``source``'s traces as ``run_id``'s in TRACES_SCHEMA (columns added since: null; older
    types cast), row group by row group."""
    file = pq.ParquetFile(source)
    options = parquet_options(TRACES_SCHEMA)
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, TRACES_SCHEMA, **options) as writer:
        for index in range(file.num_row_groups):
            table = conform_traces(file.read_row_group(index), path=source)
            ids = pa.array([run_id] * table.num_rows, pa.string())
            writer.write_table(table.set_column(0, "run_id", ids))


def publish(entry: Path, run_id: str, out_dir: Path, traces: Path | None = None) -> None:
    """Put a cached run's files into ``out_dir`` under the run's current name, its traces at
    ``traces`` (default ``out_dir/traces.parquet``; the workflow's: ``io.trace_path``).

    Files of the same name are hard-linked (copied across file systems) and given a fresh
    mtime, so Snakemake sees them as new outputs; a run cached under another name (renamed,
    not retrained) gets its ``run_id`` rewritten. An entry another folder already links (a run
    another sweep shares) is copied instead: a hard link shares its mtime, and the fresh one
    would make that sweep's aggregates look out of date. Traces written before the current
    schema (float64, columns missing) are rewritten in it, so that a sweep's traces read as one
    table (docs/outputs.md).
    """
    if not is_cached(entry):
        raise FileNotFoundError(
            f"{run_id}: its run cache entry {entry} is missing or incomplete, although its "
            f"batch's manifest exists. Fix: delete the manifest named in the job's input "
            "(results/<sweep>/batches/...) and rerun; that batch then trains the run again"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    traces = Path(traces) if traces is not None else out_dir / "traces.parquet"
    info = read_run_info(entry / "run.json")
    renamed = info["run_id"] != run_id
    if renamed or pq.read_schema(entry / "traces.parquet") != TRACES_SCHEMA:
        _write_traces(entry / "traces.parquet", traces, run_id)
    else:
        _link_or_copy(entry / "traces.parquet", traces)
    if not renamed:
        for name in ("metrics.parquet", "run.json"):
            _link_or_copy(entry / name, out_dir / name)
        return
    frame = pd.read_parquet(entry / "metrics.parquet")
    frame["run_id"] = run_id
    write_parquet(frame.reindex(columns=METRICS_SCHEMA.names), out_dir / "metrics.parquet",
                  METRICS_SCHEMA)  # fmt: skip
    experiment, run = run_id.split("/", 1)
    info.update(run_id=run_id, run=run, config={**info["config"], "run": run})
    write_json(info, out_dir / "run.json")


def main(argv: list[str] | None = None) -> None:
    """``python -m gradsweep.batches publish ENTRY RUN_ID OUT_DIR``: the ``run_files`` rule's
    command (a shell job, which Snakemake runs without re-reading the workflow)."""
    parser = argparse.ArgumentParser(prog="python -m gradsweep.batches")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("publish", help="a cached run's files into its results folder")
    cmd.add_argument("entry", type=Path)
    cmd.add_argument("run_id")
    cmd.add_argument("out_dir", type=Path)
    cmd.add_argument("--traces", type=Path, help="where the traces go (default: in out_dir)")
    args = parser.parse_args(argv)
    try:
        publish(args.entry, args.run_id, args.out_dir, args.traces)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
