"""The plan before a sweep (gradsweep.plan), the train jobs' short params
(gradsweep.batches.members_digest) and the summary at its end (gradsweep.summary), on run
files built by tests/synthetic.py. The real workflow's plan lines and summaries are checked in
test_rerun.py, test_workflow.py and test_failures.py."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from snakemake.benchmark import BenchmarkRecord, write_benchmark_records
from synthetic import RunFiles, aggregate_runs, cached_run

from gradsweep.batches import (
    batch_members,
    cache_entry,
    members_digest,
    publish,
    sweep_batches,
)
from gradsweep.costs import costliest, main, read_benchmark, read_costs
from gradsweep.formatting import duration_text, megabytes_text
from gradsweep.io import write_json
from gradsweep.plan import ExperimentPlan, plan_lines, plan_sweep
from gradsweep.summary import (
    configfile_words,
    failed_jobs,
    resume_command,
    run_outcomes,
    stale_experiments,
    summary_text,
    write_summary,
)

# 2 depths x 2 activations x 2 seeds = 8 runs of experiment "a", in batches of 3 (3, 3, 2)
CONFIG = {
    "train": {"runs_per_job": 3},
    "training": {"epochs": 4, "probe_size": 100},
    "experiments": {
        "a": {
            "dataset": "digits",
            "grid": {
                "depth": [1, 3],
                "width": [16],
                "activation": ["sigmoid", "relu"],
                "init": ["he_normal"],
                "seed": [0, 1],
            },
        }
    },
}


def with_depths(*depths: int) -> dict:
    config = copy.deepcopy(CONFIG)
    config["experiments"]["a"]["grid"]["depth"] = list(depths)
    return config


def planned(config: dict) -> tuple[dict, dict]:
    runs, batches = sweep_batches(config)
    return {(r["experiment"], r["run"]): r for r in runs}, batches


def run_sweep(root: Path, config: dict) -> None:
    """What a finished sweep leaves: every run in the run cache and in results/runs/, and each
    batch's manifest (as gradsweep.run.train_batch writes it)."""
    runs, batches = planned(config)
    for (experiment, batch), names in batches.items():
        members = []
        for name in names:
            cfg = runs[(experiment, name)]
            entry = cache_entry(root / "results/cache", cfg)
            if not entry.exists():
                cached_run(cfg, root / "results/cache")
            run_id = f"{experiment}/{name}"
            publish(entry, run_id, root / "results/s/runs" / run_id)
            members.append({"run_id": run_id, "cache": str(entry), "trained": True})
        write_json({"runs": members}, root / f"results/s/batches/{experiment}/{batch}.json")


def plan(root: Path, config: dict) -> ExperimentPlan:
    runs, batches = planned(config)
    return plan_sweep(runs, batches, root / "results/s", root / "results/cache")["a"]


def counts(p: ExperimentPlan) -> tuple[int, int, int, int]:
    return p.train, p.cache, p.done, p.jobs


def test_plan_of_a_new_and_of_a_finished_sweep(tmp_path):
    assert counts(plan(tmp_path, CONFIG)) == (8, 0, 0, 3)  # every batch trains
    run_sweep(tmp_path, CONFIG)
    assert counts(plan(tmp_path, CONFIG)) == (0, 0, 8, 0)


def test_plan_after_a_grid_value_is_added(tmp_path):
    """Depth 2 joins: batches of 3 in name order shift. Before: [d1 relu s0, d1 relu s1,
    d1 sigmoid s0] [d1 sigmoid s1, d3 relu s0, d3 relu s1] [d3 sigmoid s0, d3 sigmoid s1].
    After: b000 as before (done); b001 [d1 sigmoid s1, d2 relu s0, d2 relu s1] and b002 [d2
    sigmoid s0, d2 sigmoid s1, d3 relu s0] changed: their new runs train, the others come from
    the cache; b003 [d3 relu s1, d3 sigmoid s0, d3 sigmoid s1] has no manifest, and its runs
    were placed from b001 and b002: Snakemake places them again (their input changed)."""
    run_sweep(tmp_path, CONFIG)
    bigger = with_depths(1, 2, 3)
    assert counts(plan(tmp_path, bigger)) == (4, 5, 3, 3)
    run_sweep(tmp_path, bigger)  # and then nothing is left to do
    assert counts(plan(tmp_path, bigger)) == (0, 0, 12, 0)


def test_plan_after_a_run_folder_a_manifest_or_a_cache_entry_goes(tmp_path):
    run_sweep(tmp_path, CONFIG)
    runs, _ = planned(CONFIG)
    (tmp_path / "results/s/runs/a/d3-w16-relu-he_normal-s0/run.json").unlink()
    assert counts(plan(tmp_path, CONFIG)) == (0, 1, 7, 0)  # run_files restores it alone
    (tmp_path / "results/s/batches/a/b002.json").unlink()  # its runs are there: nothing to do
    run_sweep(tmp_path, CONFIG)
    (tmp_path / "results/s/batches/a/b002.json").unlink()
    assert counts(plan(tmp_path, CONFIG)) == (0, 0, 8, 0)
    # a run that is neither placed nor cached trains again, with its batch
    run_id = ("a", "d3-w16-sigmoid-he_normal-s1")
    (tmp_path / "results/s/runs" / "/".join(run_id) / "run.json").unlink()
    for path in cache_entry(tmp_path / "results/cache", runs[run_id]).iterdir():
        path.unlink()
    assert counts(plan(tmp_path, CONFIG)) == (1, 1, 6, 1)


def test_plan_after_a_setting_changes(tmp_path):
    run_sweep(tmp_path, CONFIG)
    config = copy.deepcopy(CONFIG)
    config["training"]["learning_rate"] = 0.05  # every run: a new cache key, same names
    assert counts(plan(tmp_path, config)) == (8, 0, 0, 3)
    # a run.json of another config is not done, even where the manifest did not change
    info = tmp_path / "results/s/runs/a/d1-w16-relu-he_normal-s0/run.json"
    info.unlink()
    write_json({"config": {**planned(config)[0][("a", "d1-w16-relu-he_normal-s0")]}}, info)
    assert counts(plan(tmp_path, CONFIG)) == (0, 1, 7, 0)


def test_plan_lines():
    plans = {"b": ExperimentPlan(4, 8, 0, 1), "a": ExperimentPlan(0, 0, 2, 0)}
    assert plan_lines(plans) == [
        "Plan for a: 0 to train, 0 from the cache, 2 done (2 runs)",
        "Plan for b: 4 to train, 8 from the cache, 0 done (12 runs, 1 train job)",
        "Plan in all (2 experiments): 4 to train, 8 from the cache, 2 done (14 runs, 1 train job)",
    ]
    assert plan_lines({"a": ExperimentPlan(1, 0, 0, 1)}) == [
        "Plan for a: 1 to train, 0 from the cache, 0 done (1 run, 1 train job)"
    ]


# --------------------------------------------------------------------------- params


def test_members_digest_changes_with_any_member_and_nothing_else():
    runs, batches = planned(with_depths(1, 2, 3))
    members = batch_members(with_depths(1, 2, 3), "a", "b001")
    assert [m["run"] for m in members] == batches[("a", "b001")]
    assert members == [runs[("a", name)] for name in batches[("a", "b001")]]
    digest = members_digest(members)
    assert len(repr(digest)) < 100
    assert members_digest(copy.deepcopy(members)) == digest  # a value, not an identity
    changed = copy.deepcopy(members)
    changed[1]["learning_rate"] = 0.05
    renamed = copy.deepcopy(members)
    renamed[0]["run"] += "-x"
    for other in (changed, renamed, members[:2], members[::-1]):
        assert members_digest(other) != digest
    # the same in a fresh process whatever its hash seed (Snakemake compares across runs)
    code = (
        "from gradsweep.batches import batch_members, members_digest; import json, sys; "
        "c = json.loads(sys.argv[1]); print(members_digest(batch_members(c, 'a', 'b001')))"
    )
    for seed in ("0", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(with_depths(1, 2, 3))],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert out.stdout.strip() == digest


def test_parse_time_modules_import_nothing_heavy():
    code = (
        "import sys, gradsweep.plan, gradsweep.summary, gradsweep.batches; "
        "print(sorted(m for m in ('tensorflow', 'matplotlib', 'scipy', 'keras') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the summary

OLD, SINCE, NEW = 1_000.0, 1_500.0, 2_000.0  # file times before and after the run started


def summary_sweep(root: Path) -> dict:
    """12 runs (depth 1 and 4, sigmoid and relu, seeds 0-2), finished; 4 × 16 sigmoid seed 1
    never learned, 4 × 16 relu seed 2 diverged. Depth 4 trained in this run (new per-run logs),
    depth 1 sigmoid came from the cache, depth 1 relu was already there."""
    config = copy.deepcopy(CONFIG)
    config["experiments"]["a"]["grid"].update(depth=[1, 4], seed=[0, 1, 2])
    runs, _ = planned(config)
    for (experiment, name), cfg in runs.items():
        behaviour = {}
        if name == "d4-w16-sigmoid-he_normal-s1":
            behaviour["acc"] = 0.1
        if name == "d4-w16-relu-he_normal-s2":
            behaviour["diverge_at"] = 2
        entry = cached_run(cfg, root / "results/cache", **behaviour)
        out = root / "results/s/runs" / experiment / name
        publish(entry, f"{experiment}/{name}", out)
        fresh = not name.startswith("d1-w16-relu")
        for path in out.iterdir():
            os.utime(path, (NEW, NEW) if fresh else (OLD, OLD))
        if name.startswith("d4"):
            log = root / "logs/s/train" / experiment / f"{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("epoch 1 ...\n")
            os.utime(log, (NEW, NEW))
    return runs


def aggregate(root: Path, runs: dict) -> pd.DataFrame:
    files = [
        RunFiles(*(root / "results/s/runs" / e / r / f for f in FILES)) for e, r in sorted(runs)
    ]
    return aggregate_runs(files, root / "results/s").runs


FILES = ("run.json", "traces.parquet", "metrics.parquet")


def options(root: Path, **more) -> dict:
    return dict(
        results=root / "results/s", cache=root / "results/cache", logs=root / "logs/s/train",
        now=NEW + 65, **more,
    )  # fmt: skip


def test_run_outcomes(tmp_path):
    runs = summary_sweep(tmp_path)
    outcomes = run_outcomes(runs, SINCE, tmp_path / "results/s", tmp_path / "results/cache",
                            tmp_path / "logs/s/train")  # fmt: skip
    by_prefix = {}
    for run_id, outcome in outcomes.items():
        by_prefix.setdefault(run_id.split("/")[1][:2] + run_id.split("-")[2], set()).add(outcome)
    assert by_prefix == {
        "d4sigmoid": {"trained"}, "d4relu": {"trained"},
        "d1sigmoid": {"from the run cache"}, "d1relu": {"unchanged"},
    }  # fmt: skip
    # a run whose training started in this run and whose cache entry is incomplete failed;
    # one with nothing new and no run.json did not finish
    d4 = ("a", "d4-w16-relu-he_normal-s0")
    (cache_entry(tmp_path / "results/cache", runs[d4]) / "run.json").unlink()
    d1 = ("a", "d1-w16-relu-he_normal-s0")
    (tmp_path / "results/s/runs/a" / d1[1] / "run.json").unlink()
    outcomes = run_outcomes(runs, SINCE, tmp_path / "results/s", tmp_path / "results/cache",
                            tmp_path / "logs/s/train")  # fmt: skip
    assert outcomes["/".join(d4)] == "failed" and outcomes["/".join(d1)] == "not finished"


def test_success_summary_counts_and_verdicts(tmp_path):
    runs = summary_sweep(tmp_path)
    table = aggregate(tmp_path, runs)
    path = tmp_path / "results/s/summary.md"
    argv = ["/venv/bin/snakemake", "--cores", "2", "--configfile", "config/my sweep.yaml"]
    text = write_summary(path, runs, SINCE, argv=argv, **options(tmp_path))
    assert path.read_text() == text
    # the counts, against runs.parquet read independently
    diverged = int((table["status"] == "diverged").sum())
    stuck = int(((table["best_val_acc"] < 0.2) & (table["status"] != "diverged")).sum())
    assert (diverged, stuck) == (1, 1)
    line = (
        f"12 runs: 6 trained, 3 from the run cache, 3 unchanged, 0 failed; "
        f"{diverged} diverged, {stuck} never learned."
    )
    assert line in text.splitlines()
    assert "after 9 min 25 s: every job completed." in text  # NEW + 65 - SINCE
    assert "## What failed" not in text
    # where the results are: the report with the same config file, quoted for the shell
    assert "`snakemake --report " + f"{tmp_path}/results/s/report.html --configfile " in text
    assert "'config/my sweep.yaml'`" in text
    # one verdict line for the experiment: first the config whose gradient ratio at init is
    # farthest from 1 (median over seeds), then the one that most often failed
    (verdicts,) = [line for line in text.splitlines() if line.startswith("- a: ")]
    ratios = table.groupby(["depth", "activation"])["grad_ratio_init"].median()
    worst = np.abs(np.log10(ratios)).idxmax()
    assert worst == (4, "sigmoid")
    first, second, tally = verdicts[len("- a: ") :].split("; ")
    seeds = table[(table["depth"] == 4) & (table["activation"] == "sigmoid")]
    mode = seeds["verdict"].mode()
    assert len(mode) == 1 and first.startswith(f"4 × 16 sigmoid {mode[0]}")
    assert "1/3 never learned" in first and "diverged" not in first
    assert second.startswith("4 × 16 relu ") and "0/3 never learned, 1/3 diverged" in second
    assert tally.startswith("12 runs at the end: ")
    final = dict(reversed(t.split(" ", 1)) for t in tally.split(": ", 1)[1].split(", "))
    assert final == {v: str(n) for v, n in table["verdict_final"].value_counts().items()}


def test_summary_without_an_up_to_date_runs_parquet(tmp_path):
    runs = summary_sweep(tmp_path)
    aggregate(tmp_path, runs)
    newer = tmp_path / "results/s/runs/a/d4-w16-relu-he_normal-s0/run.json"
    os.utime(newer, (NEW + 10, NEW + 10))  # a run placed after the table was written
    os.utime(tmp_path / "results/s/runs.parquet", (NEW, NEW))
    text = summary_text(runs, SINCE, **options(tmp_path))
    assert f"not known before {tmp_path}/results/s/runs.parquet is rebuilt" in text
    assert "## Verdicts" not in text


# A failed train job as Snakemake 9 logs it (its job block, then its error block)
SNAKEMAKE_LOG = """\
[Mon Dec  7 03:32:25 2026]
localrule train:
    input: resources/data/digits.npz
    output: results/batches/a/b001.json
    log: {log}
    jobid: 5
    reason: Missing output files: results/batches/a/b001.json
    wildcards: experiment=a, batch=b001
    priority: 13
    resources: tmpdir=/tmp, runtime=120, gpu=0, cpus=1, mem_mb=2000, mem=2 GB, mem_mib=1908
Shell command: None
[Mon Dec  7 03:32:25 2026]
rule plot_figures:
    jobid: 7
    log: logs/s/plot_figures.log
RuleException:
CalledProcessError in file "/tmp/x/workflow/rules/train.smk", line 29:
[Mon Dec  7 03:32:37 2026]
Error in rule train:
    message: None
    jobid: 5
    input: resources/data/digits.npz
    output: results/batches/a/b001.json
    log: {log} (check log file(s) for error details)
Logfile {log}:
================================================================================
run 1/3 a/d1-w16-sigmoid-he_normal-s1: training
Exiting because a job execution failed. Look above for error messages
"""


def test_failure_summary_names_the_job_its_log_and_the_resume_command(tmp_path):
    runs = summary_sweep(tmp_path)
    job_log = tmp_path / "logs/s/train/a/b001.log"
    job_log.write_text("Traceback ...\n  raise DataError\nDataError: digits.npz is corrupt\n\n")
    log = tmp_path / "snakemake.log"
    log.write_text(SNAKEMAKE_LOG.format(log=job_log))
    (jobs,) = failed_jobs(log.read_text())
    assert (jobs.rule, jobs.wildcards, jobs.logs) == ("train", "experiment=a, batch=b001",
                                                      [str(job_log)])  # fmt: skip
    failed = ("a", "d4-w16-sigmoid-he_normal-s0")  # trained in this run, not in the cache
    for path in cache_entry(tmp_path / "results/cache", runs[failed]).iterdir():
        path.unlink()
    argv = ["/usr/bin/snakemake", "results/s/results.md", "--cores", "1", "--configfile", "s.yaml"]
    text = summary_text(
        runs, SINCE, failed=True, snakemake_log=str(log), argv=argv, incomplete=True,
        **options(tmp_path),
    )  # fmt: skip
    assert "FAILED, a job did not complete." in text
    assert "12 runs: 5 trained, 3 from the run cache, 3 unchanged, 1 failed;" in text
    assert f"- rule `train` (experiment=a, batch=b001): log `{job_log}`" in text
    assert "  > DataError: digits.npz is corrupt" in text
    run_log = tmp_path / "logs/s/train/a/d4-w16-sigmoid-he_normal-s0.log"
    assert f"- run `a/d4-w16-sigmoid-he_normal-s0` failed: log `{run_log}`" in text
    assert f"- Snakemake's own log: `{log}`" in text
    resume = text.split("To resume")[1].splitlines()[2].strip()
    assert resume == (
        "snakemake results/s/results.md --cores 1 --configfile s.yaml --rerun-incomplete"
    )


def test_resume_and_report_commands():
    argv = ["/x/bin/snakemake", "-n", "--configfile", "a.yaml", "b c.yaml", "--cores", "2"]
    assert resume_command(argv, False) == "snakemake -n --configfile a.yaml 'b c.yaml' --cores 2"
    assert resume_command([*argv, "--ri"], True).endswith("--cores 2 --ri")
    main = ["/x/lib/python3.11/site-packages/snakemake/__main__.py", "--cores", "1"]
    assert resume_command(main, True) == "python -m snakemake --cores 1 --rerun-incomplete"
    assert resume_command(["pytest"], False) == "your snakemake command again"
    assert configfile_words(argv) == ["--configfile", "a.yaml", "b c.yaml"]
    assert configfile_words(["snakemake", "--configfile=x.yaml", "t"]) == ["--configfile=x.yaml"]
    assert configfile_words(["snakemake", "--cores", "1"]) == []
    # --config may name the sweep (its `sweep` key): the report needs it too
    named = ["snakemake", "--config", "sweep=mine", "--cores", "1", "--configfile", "s.yaml"]
    assert configfile_words(named) == ["--config", "sweep=mine", "--configfile", "s.yaml"]


def test_summary_text_is_markdown_a_newcomer_reads(tmp_path):
    runs = summary_sweep(tmp_path)
    aggregate(tmp_path, runs)
    (tmp_path / "results/s/figures").mkdir()
    text = summary_text(runs, SINCE, argv=["snakemake"], **options(tmp_path))
    headings = re.findall(r"^#+ .*$", text, flags=re.M)
    assert headings == ["# Sweep summary", "## Where the results are", "## Verdicts"]
    assert f"- figures: `{tmp_path}/results/s/figures/`" in text
    assert max(len(line) for line in text.splitlines()) < 400
    print(text)


def test_experiments_not_in_the_config_are_named(tmp_path):
    """Folders an earlier version of the sweep's config left in its folder results/<sweep>/ are
    named, with what to do; the current experiments' folders, the sweep-wide HParams folder
    and other sweeps' folders are not."""
    runs = summary_sweep(tmp_path)
    results = tmp_path / "results/s"
    for folder in (
        "figures/old",
        "tensorboard/old",
        "experiments/old",
        "tensorboard/hparams-config",
    ):
        (results / folder).mkdir(parents=True, exist_ok=True)
    (results / "figures/a").mkdir(parents=True, exist_ok=True)
    (tmp_path / "results/other/figures/older").mkdir(parents=True)  # another sweep's
    assert stale_experiments(results, ["a"]) == {
        "old": [str(results / f) for f in ("experiments/old", "figures/old", "tensorboard/old")]
    }
    text = summary_text(runs, SINCE, **options(tmp_path))
    section = text.split("## Not in this config\n\n")[1].split("\n\n")[0].splitlines()
    assert len(section) == 1 and section[0].startswith("- `old`: ")
    assert "removed from this sweep's config: delete them, or put the experiment back" in section[0]
    assert stale_experiments(results, ["a", "old"]) == {}


# --------------------------------------------------------------------------- job costs

# (rule/wildcards, [(wall s, max_rss MB, cpu s) per repetition]; None: Snakemake took no sample)
BENCHMARKS = {
    "train/a/b000": [(95.31, 1520.44, 90.12)],
    "train/a/b001": [(120.0, 800.0, 110.5)],
    "plot_figures": [(12.25, 2100.73, 10.0)],
    "run_files/a/d1-w16-relu-he_normal-s0": [None],
    "plot_experiment/a-initglorot_uniform-width16": [(30.5, 300.0, 20.0)],
    "download_raw/mnist/train-images-idx3-ubyte.gz": [(3.0, 90.0, 0.5), (5.5, 80.0, 0.75)],
}


def write_benchmarks(results: Path) -> None:
    """Benchmark files as Snakemake writes them (its own BenchmarkRecord and writer), plus an
    empty one (a job killed while writing it) and a file that is no benchmark."""
    for name, repetitions in BENCHMARKS.items():
        records = []
        for cost in repetitions:
            record = BenchmarkRecord()
            record.running_time = 0.42 if cost is None else cost[0]
            if cost is not None:
                record.data_collected = True
                record.max_rss, record.max_vms, record.max_uss, record.max_pss = cost[1], 1, 1, 1
                record.io_in = record.io_out = 0.0
                record.cpu_time = cost[2]
            records.append(record)
        path = results / "benchmarks" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_benchmark_records(records, str(path), extended_fmt=False)
    (results / "benchmarks/results_table.tsv").write_text("")
    (results / "benchmarks/notes.txt").write_text("s\tmax_rss\tcpu_time\n1\t2\t3\n")


def test_read_costs_from_snakemake_benchmark_files(tmp_path):
    results = tmp_path / "results/s"
    write_benchmarks(results)
    na = (results / "benchmarks/run_files/a/d1-w16-relu-he_normal-s0.tsv").read_text()
    assert na.splitlines()[1].split("\t")[:3] == ["0.42", "0:00:00", "NA"]  # the format read
    costs = read_costs(results)
    assert list(costs.columns) == ["rule", "wildcards", "wall_s", "peak_rss_mb", "cpu_s", "path"]
    got = {
        f"{r.rule}/{r.wildcards}".rstrip("/"): (r.wall_s, r.peak_rss_mb, r.cpu_s)
        for r in costs.itertuples()
    }
    expected = {
        name: tuple(max(c[i] for c in reps) for i in range(3))  # the largest repetition
        for name, reps in BENCHMARKS.items()
        if reps != [None]
    }
    assert set(got) == set(BENCHMARKS)  # the empty file and the .txt are left out
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, atol=0.005)
    wall, rss, cpu = got["run_files/a/d1-w16-relu-he_normal-s0"]
    assert wall == 0.42 and np.isnan(rss) and np.isnan(cpu)
    row = costs[costs["rule"] == "download_raw"].iloc[0]
    assert row["wildcards"] == "mnist/train-images-idx3-ubyte.gz"  # a dot in a wildcard stays
    assert read_benchmark(results / "benchmarks/results_table.tsv") is None
    assert read_costs(tmp_path / "nothing").empty


def test_costliest_jobs_in_the_summary_and_the_command(tmp_path, capsys):
    runs = summary_sweep(tmp_path)
    results = tmp_path / "results/s"
    assert "Costliest" not in summary_text(runs, SINCE, **options(tmp_path))  # no benchmarks
    write_benchmarks(results)
    costs = read_costs(results)
    by_wall = sorted(costs.itertuples(), key=lambda r: -r.wall_s)
    by_rss = sorted((r for r in costs.itertuples() if r.peak_rss_mb == r.peak_rss_mb),
                    key=lambda r: -r.peak_rss_mb)  # fmt: skip
    assert list(costliest(costs, "wall_s", 3)["wildcards"]) == [r.wildcards for r in by_wall[:3]]
    assert list(costliest(costs, "peak_rss_mb", 9)["path"]) == [r.path for r in by_rss]  # no NA

    text = summary_text(runs, SINCE, **options(tmp_path))
    headings = re.findall(r"^#+ .*$", text, flags=re.M)
    assert headings[-1] == "## Costliest jobs"
    section = text.split("## Costliest jobs\n\n")[1]
    assert section.startswith(f"6 jobs with a benchmark file in `{results}/benchmarks/`")
    wall_list = section.split("By wall time:\n\n")[1].split("\n\n")[0].splitlines()
    rss_list = section.split("By peak RSS:\n\n")[1].split("\n\n")[0].splitlines()
    assert wall_list == [
        "- `train` (a/b001): 2 min 0 s wall, 800 MB peak RSS, 1 min 50 s CPU",
        "- `train` (a/b000): 1 min 35 s wall, 1,520 MB peak RSS, 1 min 30 s CPU",
        "- `plot_experiment` (a-initglorot_uniform-width16): 30.5 s wall, 300 MB peak RSS, "
        "20.0 s CPU",
    ]
    assert [line.split(":")[0] for line in rss_list] == [
        "- `plot_figures`", "- `train` (a/b000)", "- `train` (a/b001)",
    ]  # fmt: skip
    assert f"Every job: `python -m gradsweep.costs --all {results}`" in section

    main(["--all", str(results)])
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + 6  # header, rule, a row per job
    assert table[2] == "| train | a/b001 | 2 min 0 s | 800 MB | 1 min 50 s |"  # longest first
    assert "| run_files | a/d1-w16-relu-he_normal-s0 | 0.4 s | — | — |" in table
    main(["--top", "1", str(results)])
    out = capsys.readouterr().out
    assert out.count("\n- ") == 2 and "Every job" not in out
    with pytest.raises(SystemExit, match="no benchmark files"):
        main([str(tmp_path / "results/none")])


def test_duration_and_megabytes_text():
    assert [duration_text(s) for s in (0.4, 18.5, 72, 3600 * 2 + 301)] == [
        "0 s", "18 s", "1 min 12 s", "2 h 5 min",
    ]  # fmt: skip
    assert [duration_text(s, tenths=True) for s in (0.42, 18.46, 59.96, 72.0)] == [
        "0.4 s", "18.5 s", "1 min 0 s", "1 min 12 s",
    ]  # fmt: skip
    assert duration_text(float("nan")) == "—" and megabytes_text(float("nan")) == "—"
    assert megabytes_text(933.52) == "934 MB" and megabytes_text(1520.44) == "1,520 MB"
