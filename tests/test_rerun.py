"""Rerun only what changed: after one finished sweep, `snakemake --dry-run` plans exactly the
jobs an edit affects, and nothing after an edit that changes no result.

A `train` job trains a batch of runs (docs/batches.md): its wildcards name the experiment and
the batch; a `run_files` job puts one run's files in place from the run cache. A dry run shows
which batches run; which of their runs are trained (not in the cache) shows in a real run, in
the batch's manifest (`test_changed_batch_mate_trains_alone_...`).

One real sweep (the smoke sweep plus a tiny second experiment) runs once per module. Each test
gets its own copy of the finished directory (results, logs and .snakemake/ metadata, mtimes
kept), at the path the sweep ran in. The copy holds its own src/, which Snakemake imports and
the rules' code inputs name (relative paths, so an edit of the copy's module is the change).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.optimize
import yaml
from matplotlib.image import imread
from workflow_helpers import (
    REPO,
    copy_checkout,
    copy_finished,
    dry_run,
    group_jobs,
    run_file,
    snakemake,
    sweep_folder,
    without_slurm_settings,
)

from gradsweep.batches import cache_entry, is_cached
from gradsweep.config import REMEDY_DEFAULTS, TRAINING_DEFAULTS, expand_runs
from gradsweep.io import trace_path

pytestmark = pytest.mark.slow

CONFIG = "config/rerun.yaml"
OUT = sweep_folder(CONFIG)  # results/rerun: the config file's name
LOGS = f"logs/{Path(OUT).name}"
SWEEP = ("--cores", "2", "--configfile", CONFIG)
DATA_RULES = {"download_raw", "prepare_data"}
# A second experiment, so a change to one experiment can be seen to leave the other alone.
TINY = {
    "description": "two 1-epoch runs, the second experiment of the rerun tests",
    "dataset": "digits",
    "training": {"epochs": 1, "probe_size": 100},
    "grid": {
        "depth": [1],
        "width": [8],
        "activation": ["sigmoid"],
        "init": ["scaled_normal"],
        "seed": [0, 1],
    },
}


def smoke_runs(*depths: int) -> set[str]:
    """Names of the smoke experiment's runs of these depths."""
    return {
        f"d{d}-w16-{a}-{i}-s0"
        for d in depths
        for a in ("sigmoid", "relu")
        for i in ("scaled_normal", "he_normal")
    }


SMOKE_RUNS = smoke_runs(1, 4)
TINY_RUNS = {"d1-w8-sigmoid-scaled_normal-s0", "d1-w8-sigmoid-scaled_normal-s1"}


def write_config(workdir: Path, edit=None) -> None:
    """config/rerun.yaml: config/smoke.yaml plus the experiment TINY, then ``edit(config)``."""
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    config["experiments"]["tiny"] = copy.deepcopy(TINY)
    if edit:
        edit(config)
    (workdir / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The finished sweep, kept aside; tests work on copies of it (see ``sweep``)."""
    root = tmp_path_factory.mktemp("rerun")
    work = copy_checkout(root / "work")
    write_config(work)
    snakemake(work, *SWEEP)
    return work.rename(root / "finished")


@pytest.fixture
def sweep(finished: Path) -> Path:
    """A fresh copy of the finished sweep, at the path where it ran."""
    work = finished.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    return copy_finished(finished, work)


def plan(workdir: Path, *targets: str) -> tuple[Counter, list[dict], str]:
    """A dry run: jobs per rule, the planned jobs, and its whole output."""
    # targets first: --configfile takes every following word as a config file
    counts, jobs, output = dry_run(workdir, *targets, *SWEEP)
    print(f"planned: {dict(counts)}")  # shown with pytest -s, and on failure
    return counts, jobs, output


def plan_lines(output: str) -> dict[str, str]:
    """{experiment: what its "Plan for <experiment>: ..." line says} (gradsweep.plan), printed
    once, before Snakemake plans any job."""
    said = re.findall(r"^Plan for (\w+): (.*)$", output, flags=re.M)
    assert len(said) == len(dict(said)), output
    assert output.index("Plan for") < output.index("Building DAG of jobs"), output
    return dict(said)


def params_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "Params have changed" in line]


def batches(jobs: list[dict]) -> set[tuple[str, str]]:
    """The planned train jobs: (experiment, batch)."""
    return {(job["experiment"], job["batch"]) for job in jobs if job["rule"] == "train"}


def placed(jobs: list[dict]) -> set[tuple[str, str]]:
    """The runs whose files a planned run_files job puts in place (from the run cache)."""
    return {(job["experiment"], job["run"]) for job in jobs if job["rule"] == "run_files"}


def manifest(
    workdir: Path, experiment: str, batch: str = "b000", out: str = OUT
) -> dict[str, bool]:
    """{run name: trained in this batch job (False: restored from the run cache)}."""
    text = (workdir / f"{out}/batches" / experiment / f"{batch}.json").read_text()
    return {m["run_id"].split("/")[1]: m["trained"] for m in json.loads(text)["runs"]}


TRAIN_RULES = {"train", "run_files"}
# the plan lines of the finished sweep: every run done
ALL_DONE = {
    "smoke": "0 to train, 0 from the cache, 8 done (8 runs)",
    "tiny": "0 to train, 0 from the cache, 2 done (2 runs)",
}


def test_finished_sweep_ran_both_experiments(finished):
    for experiment, runs in (("smoke", SMOKE_RUNS), ("tiny", TINY_RUNS)):
        done = {p.parent.name for p in (finished / f"{OUT}/runs" / experiment).glob("*/run.json")}
        assert done == runs
        # short runs: one batch per experiment, every run trained in it
        assert manifest(finished, experiment) == dict.fromkeys(runs, True)


# (a)
def test_unchanged_sweep_has_nothing_to_do(sweep):
    counts, jobs, output = plan(sweep)
    assert counts == Counter() and jobs == []
    assert plan_lines(output) == ALL_DONE
    # params are plain values in a stable order: no process sees a change, whatever its hash
    # seed (Snakemake 9.27's --list-params-changes cannot tell: it lists every output)
    for seed in ("0", "12345"):
        output = dry_run(sweep, *SWEEP, env={**os.environ, "PYTHONHASHSEED": seed})[2]
        assert "Nothing to be done" in output
    # --summary agrees: every output of the sweep is there and up to date
    summary = snakemake(sweep, *SWEEP, "--summary").stdout.splitlines()
    header = summary.index(next(line for line in summary if line.startswith("output_file")))
    rows = [line.split("\t") for line in summary[header + 1 :] if line.strip()]
    assert rows and {(row[-2], row[-1]) for row in rows} == {("ok", "no update")}, rows


# (b)
def test_new_grid_value_plans_only_the_new_runs(sweep):
    write_config(sweep, lambda c: c["experiments"]["smoke"]["grid"]["depth"].append(2))
    counts, jobs, output = plan(sweep)
    # the smoke batch gains 4 members; a real run trains only them (see the real-run test)
    assert batches(jobs) == {("smoke", "b000")}
    assert {r for _, r in placed(jobs)} >= smoke_runs(2)
    assert not DATA_RULES & set(counts)
    assert counts["aggregate_experiment"] == 1 and counts["aggregate"] == 1
    assert {job["experiment"] for job in jobs if "experiment" in job} == {"smoke"}
    assert counts["plot_figures"] == counts["results_table"] == 1
    # the plan says it in one line per experiment: the 4 new runs train, the batch's other
    # members come from the run cache (the real run's manifests agree: test (g))
    assert plan_lines(output) == {
        "smoke": "4 to train, 8 from the cache, 0 done (12 runs, 1 train job)",
        "tiny": ALL_DONE["tiny"],
    }
    assert "Plan in all (2 experiments): 4 to train, 8 from the cache, 2 done" in output
    # the train job's params changed: said in one short line, not its members' configs
    (reason,) = params_lines(output)
    assert len(reason) < 500 and len(re.findall(r"'[0-9a-f]{64}'", reason)) == 2, reason


# (c)
def test_changed_training_setting_reruns_only_that_experiment(sweep):
    write_config(sweep, lambda c: c["experiments"]["tiny"]["training"].update(learning_rate=0.05))
    counts, jobs, output = plan(sweep)
    assert batches(jobs) == {("tiny", "b000")}
    assert placed(jobs) == {("tiny", run) for run in TINY_RUNS}
    assert all(
        job["reason"].startswith("Params have changed") for job in jobs if job["rule"] == "train"
    )
    assert not DATA_RULES & set(counts)
    # per-experiment jobs (aggregation, the experiment's figures) only for "tiny"
    assert {job["experiment"] for job in jobs if "experiment" in job} == {"tiny"}
    assert counts["aggregate_experiment"] == 1 and counts["aggregate"] == 1
    # a new learning rate is a new cache key: both tiny runs train
    assert plan_lines(output) == {
        "smoke": ALL_DONE["smoke"],
        "tiny": "2 to train, 0 from the cache, 0 done (2 runs, 1 train job)",
    }
    assert all(len(line) < 500 for line in params_lines(output))


# (d) A rule's code inputs are the gradsweep modules its script imports (script_code in
# workflow/rules/common.smk). Each row: an edited module (under src/gradsweep/); the rules
# whose scripts import it, transitively, read by hand from workflow/scripts/ and the modules'
# imports (their planned jobs list the module among their inputs); and every rule planned,
# those plus the jobs after them. `train` and the data rules never take code inputs.
# The scripts, read by hand (docs/architecture.md has the layers):
# - results_table.py: table.results -> table.{configs,seeds,claims,common} -> reference,
#   stats, claims, formatting, settings, verdicts;
# - plot_figures.py: plotting.read_traces (data) and plotting.sweep's figures -> formatting;
# - plot_experiment.py: plotting.data, plotting.gradients and plotting.curves (-> verdicts;
#   no formatting, no stats);
# - plot_article.py (plot_activations, plot_diagnostics in this sweep): plotting.activations,
#   diagnostics, remedies (-> claims -> stats), speed_of_learning, init_norms (-> formatting);
# - aggregate.py, concatenate.py, tensorboard.py: aggregate -> io, settings, verdicts.
TABLE_RULE = {"results_table"}
ARTICLE_RULES = {"plot_activations", "plot_diagnostics"}
CODE_EDITS = {
    # edited module: (rules importing it, rules planned)
    # deep in the table's imports: results_table.py -> table.results -> table.common
    "table/common.py": (TABLE_RULE, TABLE_RULE),
    # deeper still, and shared: the table's formatters, which some figures use too
    "formatting.py": (
        TABLE_RULE | ARTICLE_RULES | {"plot_figures"},
        TABLE_RULE | ARTICLE_RULES | {"plot_figures"},
    ),
    # per-config statistics: the table, and the article's remedies figure through claims; the
    # aggregates do not import it (a run's verdict and escape epoch live in verdicts)
    "stats.py": (TABLE_RULE | ARTICLE_RULES, TABLE_RULE | ARTICLE_RULES),
    # a leaf: only plotting.plot_ratio_heatmap etc., which plot_figures.py alone calls
    "plotting/sweep.py": ({"plot_figures"}, {"plot_figures"}),
}


@pytest.mark.parametrize("module", CODE_EDITS)
def test_edited_module_reruns_the_rules_that_import_it(sweep, module):
    importers, planned = CODE_EDITS[module]
    # the copy's module: Snakemake imports the copy's src/ (the Snakefile puts it first on
    # sys.path), and script_code reads the files of the package it imported
    path = sweep / "src/gradsweep" / module
    path.write_text(path.read_text() + "\nEDITED_BY_THE_RERUN_TEST = 1  # no result changes\n")
    counts, jobs, output = plan(sweep)
    changed = f"src/gradsweep/{module}"  # relative to the working directory
    assert set(counts) - {"all"} == planned
    assert {job["rule"] for job in jobs if changed in job["input"].split(", ")} == importers
    # the reason names the module where nothing before the job is planned (Snakemake gives
    # "Input files updated by another job" alone where something is)
    because = {job["rule"] for job in jobs if changed in job["reason"]}
    assert because and because <= importers
    assert not (DATA_RULES | TRAIN_RULES) & set(counts)
    assert str(REPO) not in "".join(job["reason"] for job in jobs)
    assert plan_lines(output) == ALL_DONE


def test_edited_plotting_script_reruns_nothing(sweep):
    """Documents a limit of the rerun rule: with the `code` trigger off, an edit of a
    workflow/scripts/ adapter (not of a gradsweep module) reruns nothing."""
    path = sweep / "workflow/scripts/plot_figures.py"
    path.write_text(path.read_text() + "\n# edited\n")
    counts, _, _ = plan(sweep)
    assert counts == Counter()


# (e)
def test_touching_every_source_file_reruns_nothing(sweep):
    """What a fresh clone or checkout does: new mtimes, same content. Snakemake compares the
    recorded checksums of inputs newer than their outputs, and the `code` trigger is off."""
    sources = [p for part in ("src", "workflow", "config") for p in (sweep / part).rglob("*")]
    assert len(sources) > 20
    for path in sources:
        if path.is_file():
            path.touch()
    counts, _, _ = plan(sweep)
    assert counts["train"] == 0
    assert counts == Counter()


def test_trainer_code_edit_reruns_nothing_until_the_version_is_bumped(sweep):
    run_py = sweep / "src/gradsweep/run.py"
    run_py.write_text(run_py.read_text() + "\n# a change to training\n")
    assert plan(sweep)[0] == Counter()

    config_py = sweep / "src/gradsweep/config.py"
    text, n = re.subn(
        r"^TRAINER_VERSION = (\d+)$",
        lambda m: f"TRAINER_VERSION = {int(m[1]) + 1}",
        config_py.read_text(),
        flags=re.M,
    )
    assert n == 1
    config_py.write_text(text)
    counts, jobs, output = plan(sweep)
    assert batches(jobs) == {("smoke", "b000"), ("tiny", "b000")}
    # a new TRAINER_VERSION is a new cache key for every run: all are trained again
    assert placed(jobs) == {("smoke", r) for r in SMOKE_RUNS} | {("tiny", r) for r in TINY_RUNS}
    assert not DATA_RULES & set(counts)
    assert plan_lines(output) == {
        "smoke": "8 to train, 0 from the cache, 0 done (8 runs, 1 train job)",
        "tiny": "2 to train, 0 from the cache, 0 done (2 runs, 1 train job)",
    }


# (f)
def test_removed_run_output_is_restored_from_the_run_cache_alone(sweep):
    """A deleted run folder comes back from the run cache: no batch job, no training."""
    shutil.rmtree(sweep / f"{OUT}/runs/smoke/d4-w16-relu-he_normal-s0")
    counts, jobs, output = plan(sweep)
    assert batches(jobs) == set()
    assert placed(jobs) == {("smoke", "d4-w16-relu-he_normal-s0")}
    assert {job["experiment"] for job in jobs if "experiment" in job} == {"smoke"}
    assert counts["aggregate_experiment"] == 1 and not DATA_RULES & set(counts)
    assert plan_lines(output) == {
        "smoke": "0 to train, 1 from the cache, 7 done (8 runs)",
        "tiny": ALL_DONE["tiny"],
    }


def test_removed_run_output_is_rebuilt_alone_on_request(sweep):
    run = f"{OUT}/runs/smoke/d4-w16-relu-he_normal-s0"
    traces = trace_path(OUT, "smoke", "d4-w16-relu-he_normal-s0")
    (sweep / traces).unlink()
    counts, jobs, _ = plan(sweep, str(traces), f"{run}/run.json")
    assert counts == Counter(run_files=1)
    assert placed(jobs) == {("smoke", "d4-w16-relu-he_normal-s0")}


def test_forced_batch_without_a_cache_entry_retrains_only_that_run(sweep):
    """The way to retrain a run (docs/batches.md): delete its cache entry, force its batch.
    The batch job is planned (and trains that run only: its batch-mates are in the cache)."""
    run = "d4-w16-relu-he_normal-s0"
    info = json.loads((sweep / f"{OUT}/runs/smoke" / run / "run.json").read_text())
    shutil.rmtree(cache_entry(sweep / "results/cache", info["config"]))
    counts, jobs, _ = plan(sweep, "--forcerun", f"{OUT}/batches/smoke/b000.json")
    assert batches(jobs) == {("smoke", "b000")}
    assert placed(jobs) == {("smoke", r) for r in SMOKE_RUNS}
    assert not DATA_RULES & set(counts)
    assert {job["experiment"] for job in jobs if "experiment" in job} == {"smoke"}


# grouping (job batches for clusters); the real SLURM submission is tested in test_slurm.py
def test_groups_batch_the_new_train_jobs(sweep):
    def edit(config):
        config["experiments"]["smoke"]["grid"]["depth"].append(2)
        config["train"]["runs_per_job"] = 4  # smoke: 3 batches of 4 runs, all new; tiny as is

    write_config(sweep, edit)
    group = ("--groups", "train=g", "--group-components", "g=2")
    _, _, output = dry_run(
        sweep,
        "--profile",
        "workflow/profiles/slurm",
        "--configfile",
        CONFIG,
        *group,
        env=without_slurm_settings(),
    )
    # b000 lost members, b001 is new, and b002's runs were placed from the old b000
    assert plan_lines(output) == {
        "smoke": "4 to train, 8 from the cache, 0 done (12 runs, 3 train jobs)",
        "tiny": ALL_DONE["tiny"],
    }
    groups = group_jobs(output)
    assert sorted(len(g) for g in groups) == [1, 2]
    assert {job["rule"] for g in groups for job in g} == {"train"}
    assert {(j["experiment"], j["batch"]) for g in groups for j in g} == {
        ("smoke", f"b00{i}") for i in range(3)
    }


# (g) batches, for real: what a batch job trains and what it takes from the run cache
def test_changed_batch_mate_trains_alone_and_added_runs_train_alone(sweep, finished):
    """One tiny run's learning rate changes (which renames both tiny runs: the varied key
    joins their names), smoke gains depth 2, and a smoke run's folder is deleted. A real run
    trains exactly the changed run and the 4 new ones; every other run, renamed or not, comes
    from the run cache: not trained, its cached files untouched, its results the same."""

    def edit(config):
        config["experiments"]["smoke"]["grid"]["depth"].append(2)
        tiny = config["experiments"]["tiny"]["grid"]
        config["experiments"]["tiny"]["grid"] = [
            {**tiny, "seed": [0]},
            {**tiny, "seed": [1], "learning_rate": [0.05]},
        ]

    write_config(sweep, edit)
    shutil.rmtree(sweep / f"{OUT}/runs/smoke/d1-w16-relu-he_normal-s0")
    cache = sorted((sweep / "results/cache").rglob("*"))
    before = {p: p.read_bytes() for p in cache if p.is_file()}
    logs = {p: p.stat().st_mtime_ns for p in (sweep / f"{LOGS}/train").rglob("d*.log")}
    result = snakemake(sweep, *SWEEP)
    output = result.stdout + result.stderr
    assert plan_lines(output) == {
        "smoke": "4 to train, 8 from the cache, 0 done (12 runs, 1 train job)",
        "tiny": "1 to train, 1 from the cache, 0 done (2 runs, 1 train job)",
    }

    kept, changed = "d1-w8-sigmoid-scaled_normal-s0", "d1-w8-sigmoid-scaled_normal-s1"
    assert manifest(sweep, "tiny") == {
        f"{kept}-learning_rate0.1": False,  # renamed, same config: restored
        f"{changed}-learning_rate0.05": True,  # its config changed: trained
    }
    assert manifest(sweep, "smoke") == {r: r in smoke_runs(2) for r in smoke_runs(1, 2, 4)}
    # the restored runs' cache entries (run.json has the run's wall time) and logs are as they
    # were: not trained again
    assert {p: p.read_bytes() for p in before} == before
    assert {p: p.stat().st_mtime_ns for p in logs} == logs
    for p in (sweep / f"{LOGS}/train").rglob("d*.log"):  # the new runs' own logs
        if p not in logs:
            assert p.stem in smoke_runs(2) or p.stem == f"{changed}-learning_rate0.05", p
    # restored results equal the finished sweep's (the renamed run: all but its name)
    same = [f"smoke/{r}" for r in ("d1-w16-relu-he_normal-s0", "d4-w16-relu-he_normal-s0")]
    for old, new in [(r, r) for r in same] + [(f"tiny/{kept}", f"tiny/{kept}-learning_rate0.1")]:
        for name in ("traces.parquet", "metrics.parquet"):
            a = pd.read_parquet(run_file(finished / OUT, old, name))
            b = pd.read_parquet(run_file(sweep / OUT, new, name))
            assert set(b["run_id"]) == {new}
            pd.testing.assert_frame_equal(a.drop(columns="run_id"), b.drop(columns="run_id"))
    runs = pd.read_parquet(sweep / f"{OUT}/runs.parquet")
    assert len(runs) == 14 and runs["run_id"].is_unique
    # the summary at the end counts what the manifests say was trained and restored
    trained = [t for e in ("smoke", "tiny") for t in manifest(sweep, e).values()]
    diverged = int((runs["status"] == "diverged").sum())
    stuck = int(((runs["best_val_acc"] < 0.2) & (runs["status"] != "diverged")).sum())
    line = (
        f"14 runs: {sum(trained)} trained, {trained.count(False)} from the run cache, "
        f"0 unchanged, 0 failed; {diverged} diverged, {stuck} never learned."
    )
    assert sum(trained) == 5
    summary = (sweep / f"{OUT}/summary.md").read_text()
    assert line in summary.splitlines() and line in output.splitlines()
    verdicts = summary.split("## Verdicts\n", 1)[1].split("\n## ", 1)[0]
    assert [v[2:].split(":")[0] for v in verdicts.splitlines() if v.startswith("- ")] == [
        "smoke",
        "tiny",
    ]  # one verdict line per experiment
    assert dry_run(sweep, *SWEEP)[0] == Counter()  # and then nothing is left to do


# (h) one folder per sweep: a second config in the same working directory, the digits-sized
# edge_of_chaos (the test adds the first sweep's `tiny` experiment to it), whose measured
# gradient slopes at initialisation the test also checks against mean-field theory.
SECOND_CONFIG = REPO / "config/edge_of_chaos_digits.yaml"


def _gauss(f) -> float:
    """E[f(z)], z ~ N(0, 1), by scipy's adaptive quadrature (not gradsweep.meanfield's rule)."""
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    return scipy.integrate.quad(lambda z: f(z) * pdf(z), -12, 12, limit=200)[0]


def tanh_slope(sigma_w2: float, sigma_b2: float) -> float:
    """ln χ₁ / 2 of tanh: q* by a root finder on the variance map, χ₁ = σ_w² E[sech⁴(√q* z)]."""
    q = scipy.optimize.brentq(
        lambda q: sigma_w2 * _gauss(lambda z: math.tanh(math.sqrt(q) * z) ** 2) + sigma_b2 - q,
        1e-6, 100,
    )  # fmt: skip
    return math.log(sigma_w2 * _gauss(lambda z: math.cosh(math.sqrt(q) * z) ** -4)) / 2


# How far a config's measured slope (the mean of its 2 seeds) may be from ln χ₁ / 2. Measured
# with the same nets (tanh, 12 × 128, σ_b² = 0.05, digits probe of 500 images) over 10 seeds
# each at σ_w² = 1, 1.761, 3: the seeds' deviations had a mean of −0.007, +0.005 and +0.014
# (finite width and the first layers, whose variance is still on its way to q*) and a standard
# deviation of 0.009, 0.009 and 0.008 (0.024 at width 64 and up to 0.037 at width 32: it
# shrinks with the width, as the O(1/√N) per-layer fluctuations of docs/meanfield.md do).
# Largest mean deviation + 4 standard errors of a 2-seed mean: 0.014 + 4 · 0.009/√2 = 0.039.
SLOPE_TOLERANCE = 0.04


def files_of(folder: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_a_second_sweep_leaves_the_first_intact_and_restores_shared_runs(sweep):
    """A second config run after the first in the same directory writes only into its own
    folder, results/<its name>/: every file of the first sweep's folder stays as it was, byte
    for byte. The runs both sweeps hold (the first's `tiny`, added to the second) come from the
    shared run cache, not trained again; then the first sweep has nothing to do."""
    first = yaml.safe_load((sweep / CONFIG).read_text())
    second = yaml.safe_load(SECOND_CONFIG.read_text())
    # tiny's training written out whole, so the second config's shared settings cannot touch it
    training = {**TRAINING_DEFAULTS, **REMEDY_DEFAULTS, **first["training"], **TINY["training"]}
    second["experiments"]["tiny"] = {**copy.deepcopy(TINY), "training": training}
    configfile = f"config/{SECOND_CONFIG.name}"
    (sweep / configfile).write_text(yaml.safe_dump(second, sort_keys=False))
    out = sweep_folder(configfile, second)
    logs = f"logs/{Path(out).name}"
    assert out != OUT
    shared = {
        (cfg["experiment"], cfg["run"])
        for cfg in expand_runs(second)
        if is_cached(cache_entry(sweep / "results/cache", cfg))
    }
    assert shared == {("tiny", run) for run in TINY_RUNS}
    before = files_of(sweep / OUT)
    cached = files_of(sweep / "results/cache")

    result = snakemake(sweep, "--cores", "2", "--configfile", configfile)
    output = result.stdout + result.stderr
    assert plan_lines(output)["tiny"].startswith("0 to train, 2 from the cache, 0 done")

    # the first sweep's folder, byte for byte and untouched; the cache entries too
    assert files_of(sweep / OUT) == before
    assert {p: v for p, v in files_of(sweep / "results/cache").items() if p in cached} == cached
    assert sorted(p.name for p in (sweep / "results").iterdir()) == sorted(
        ["cache", Path(OUT).name, Path(out).name]
    )
    # the shared runs: restored, not trained (no training log), the first sweep's results
    assert manifest(sweep, "tiny", out=out) == dict.fromkeys(TINY_RUNS, False)
    for run in TINY_RUNS:
        assert not (sweep / logs / "train/tiny" / f"{run}.log").exists()
        for name in ("traces.parquet", "metrics.parquet"):
            a, b = (pd.read_parquet(run_file(sweep / o, f"tiny/{run}", name)) for o in (OUT, out))
            pd.testing.assert_frame_equal(a, b)
    # the second sweep's own outputs, in its folder
    experiments = sorted(second["experiments"])
    runs = pd.read_parquet(sweep / out / "runs.parquet")
    assert sorted(runs["experiment"].unique()) == experiments
    assert len(runs) == len(expand_runs(second))
    table = (sweep / out / "results.md").read_text()
    assert all(f"## {e}" in table for e in experiments)
    assert "## smoke" in (sweep / OUT / "results.md").read_text() and "## smoke" not in table
    for e in experiments:
        assert (sweep / out / "figures" / e / "gradients.png").is_file()
        assert (sweep / out / "tensorboard" / e).is_dir()
    summary = (sweep / out / "summary.md").read_text()
    assert f"{len(runs)} runs: {len(runs) - 2} trained, 2 from the run cache," in summary
    assert f"`{out}/results.md`" in summary and "## Not in this config" not in summary
    # switching back: the first sweep is up to date, nothing to redo
    assert dry_run(sweep, *SWEEP)[0] == Counter()
    check_edge_of_chaos(sweep / out, runs[runs["experiment"] == "edge_of_chaos"])


def check_edge_of_chaos(out: Path, runs: pd.DataFrame) -> None:
    """The digits edge_of_chaos: each config's measured per-layer slope of ln per-image
    gradient at initialisation within SLOPE_TOLERANCE of ln χ₁ / 2 (recomputed with SciPy),
    its two figures drawn and its claim section in results.md."""
    assert len(runs) == 6 and set(runs["weight_variance"]) == {1.0, 1.761, 3.0}
    for w, group in runs.groupby("weight_variance"):
        predicted = tanh_slope(w, 0.05)
        np.testing.assert_allclose(group["grad_slope_predicted"], predicted, atol=1e-6)
        measured = group["grad_slope_init"].mean()
        assert abs(measured - predicted) <= SLOPE_TOLERANCE, (w, measured, predicted)
    # the sign alone already tells the phases apart: vanishing, flat, exploding
    assert tanh_slope(1.0, 0.05) < -0.1 and tanh_slope(3.0, 0.05) > 0.08
    for name in ("trainability", "slopes"):
        imread(out / f"figures/edge_of_chaos/{name}.png")
    assert "**Trainable where L ≲ 6 ξ_c:" in (out / "results.md").read_text()
