import os
import shlex
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from jsonschema import ValidationError

from gradsweep.batches import (
    cache_entry,
    estimate_seconds,
    members_digest,
    sweep_batches,
)
from gradsweep.codedeps import imported_files
from gradsweep.config import (
    ConfigError,
    available_cpus,
    check_sources,
    explain,
    sweep_name,
)
from gradsweep.data import download_targets, raw_files
from gradsweep.io import trace_path
from gradsweep.plan import plan_lines, plan_sweep
from gradsweep.summary import incomplete_outputs, write_summary

START = time.time()  # the end-of-run summary counts what was written after it

# Fail before planning any job, with one line naming experiment, key, value and allowed values.
try:
    validate(config, schema="../schemas/config.schema.yaml")
    # One train job trains a batch of runs in one process (docs/batches.md):
    # {(experiment, batch id): [run names]}, planned the way each train job finds its runs.
    run_list, BATCHES = sweep_batches(config)
    RUNS = {(run["experiment"], run["run"]): run for run in run_list}
    check_sources(config)
    # the sweep's name (the config's `sweep:`, else its file's name): Snakemake gives cluster
    # jobs the same --configfile and --config, so they find the same folder
    SWEEP = sweep_name(config, workflow.overwrite_configfiles)
except WorkflowError as error:  # the schema said no
    if not isinstance(error.__context__, ValidationError):
        raise
    raise WorkflowError(f"Invalid config: {explain(error.__context__)}") from None
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None
EXPERIMENTS = sorted({experiment for experiment, _ in RUNS})
TRAIN = {
    "threads": 1,
    "gpu": 0,
    "mem_mb": 4000,
    "runtime": 120,
    "runs_per_job": None,
    "seconds_per_job": None,
    **config.get("train", {}),
}
# each run's batch
BATCH_OF = {
    (experiment, run): batch
    for (experiment, batch), runs in BATCHES.items()
    for run in runs
}
# Every output of the sweep goes under OUT (paths such as f"{OUT}/figures/..."), its jobs'
# logs under LOGS; the run cache is every sweep's: a second sweep restores the runs it shares.
OUT = f"results/{SWEEP}"
LOGS = f"logs/{SWEEP}"
RUN_CACHE = "results/cache"
TRAIN_LOGS = f"{LOGS}/train"

# the run_files command: this Python, so the package is the one Snakemake imported
PUBLISH = f"{shlex.quote(sys.executable)} -m gradsweep.batches publish"

# The plan, before any job (dry run or real): per experiment, runs to train, from the run
# cache, already done (gradsweep.plan). Not in the jobs a cluster starts (they parse this too).
if workflow.is_main_process:
    for line in plan_lines(plan_sweep(RUNS, BATCHES, OUT, RUN_CACHE)):
        logger.info(line)

# `--cores` counts what Snakemake may hand out, not what the machine has: `--cores 8` on a
# 2-core laptop would start 8 train jobs on 2 CPUs. So each train job also takes its threads
# from a `cpus` resource, which a local run caps at this machine's CPUs (unless the user sets
# `--resources cpus=N`). Cluster jobs are not capped here: the scheduler places them.
CPUS = available_cpus()
if workflow.local_exec and "cpus" not in workflow.global_resources:
    workflow.register_resource("cpus", CPUS)


wildcard_constraints:
    experiment=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_.+-]+",
    batch=r"b[0-9]+",
    dataset=r"mnist|fashion_mnist|digits",


def run_config(wildcards):
    """The run's hyperparameters: plain Python values in sorted key order."""
    return RUNS[(wildcards.experiment, wildcards.run)]


def batch_runs(wildcards):
    """The batch's runs' configs, in training order."""
    return [
        RUNS[(wildcards.experiment, run)]
        for run in BATCHES[(wildcards.experiment, wildcards.batch)]
    ]


def batch_digest(wildcards):
    """The train job's params: a digest of its runs' configs (the job finds the configs from
    the sweep's config, gradsweep.batches.batch_members, and checks them against it)."""
    return members_digest(batch_runs(wildcards))


def batch_data(wildcards):
    return f"resources/data/{batch_runs(wildcards)[0]['dataset']}.npz"


def batch_priority(wildcards):
    """Longest batch first: its estimated seconds of training. Started last, a long batch (the
    2048-wide net) would run alone on one core while the others idle."""
    return round(sum(estimate_seconds(run) for run in batch_runs(wildcards)))


def batch_runtime(wildcards):
    """Minutes: train.runtime is per run, a batch runs its runs one after another."""
    return TRAIN["runtime"] * len(BATCHES[(wildcards.experiment, wildcards.batch)])


def run_batch(wildcards):
    """The manifest of the batch that trains the run."""
    batch = BATCH_OF[(wildcards.experiment, wildcards.run)]
    return f"{OUT}/batches/{wildcards.experiment}/{batch}.json"


def run_cache_entry(wildcards):
    return str(cache_entry(RUN_CACHE, run_config(wildcards)))


def dataset_source(dataset):
    return (config.get("datasets", {}).get(dataset) or {}).get("source")


def dataset_raw_files(wildcards):
    return raw_files(wildcards.dataset, dataset_source(wildcards.dataset))


def download_target(wildcards):
    url, sha256 = download_targets(wildcards.dataset)[wildcards.filename]
    return {"url": url, "sha256": sha256}


def sweep_tables(name):
    """One per-experiment aggregate (runs or metrics) of every experiment, to stack."""
    return expand(
        f"{OUT}/experiments/{{experiment}}/{name}.parquet", experiment=EXPERIMENTS
    )


def run_outputs(name, experiment=None):
    """One file of every run (of one experiment, if given), in a stable order."""
    return [
        f"{OUT}/runs/{exp}/{run}/{name}"
        for exp, run in sorted(RUNS)
        if experiment in (None, exp)
    ]


def run_traces(experiment=None):
    """Every run's traces (of one experiment, if given), in the order of run_outputs: the
    hive-partitioned folder results/<sweep>/traces/ (gradsweep.io.trace_path)."""
    return [
        str(trace_path(OUT, exp, run))
        for exp, run in sorted(RUNS)
        if experiment in (None, exp)
    ]


def final_outputs():
    return [
        f"{OUT}/results.md",
        f"{OUT}/results_seeds.md",
        f"{OUT}/figures/activation_init.png",
        f"{OUT}/figures/accuracy_depth.png",
        f"{OUT}/figures/ratio_heatmap.png",
        *experiment_figures(),
        *article_outputs(),
        *expand(f"{OUT}/tensorboard/{{name}}", name=["hparams-config", *EXPERIMENTS]),
        # every run's own files too: a deleted run is retrained even when the figures exist
        *run_outputs("run.json"),
        *run_traces(),
        *run_outputs("metrics.parquet"),
    ]


def script_code(script):
    """Code inputs for the jobs that run workflow/scripts/<script>: the file of every
    gradsweep module the script imports, transitively (gradsweep.codedeps reads the imports,
    runs nothing), so editing a module reruns exactly the jobs whose scripts import it.
    Not given to `train` (its reruns follow TRAINER_VERSION, never code edits) nor to the
    data rules (a new dataset file would rerun every batch): README, "Rerunning only what
    changed"."""
    paths = imported_files(Path(workflow.basedir) / "scripts" / script)
    # relative where possible, so a moved or copied project does not look changed
    return [
        os.path.relpath(p) if p.is_relative_to(Path.cwd()) else str(p) for p in paths
    ]


def end_of_run(log, failed):
    """The summary at the end (gradsweep.summary): printed, and in results/<sweep>/summary.md."""
    text = write_summary(
        f"{OUT}/summary.md",
        RUNS,
        START,
        failed=failed,
        snakemake_log=log[0] if log else None,
        argv=sys.argv,
        incomplete=incomplete_outputs(),
        results=OUT,
        cache=RUN_CACHE,
        logs=TRAIN_LOGS,
        logs_on_terminal=workflow.output_settings.show_failed_logs,
    )
    logger.info(f"\n{text}(also in {OUT}/summary.md)")
