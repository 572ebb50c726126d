import importlib.util

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gradsweep.config import ConfigError, expand_runs, explain
from gradsweep.data import download_targets, raw_files

try:
    validate(config, schema="../schemas/config.schema.yaml")
    RUNS = {(run["experiment"], run["run"]): run for run in expand_runs(config)}
except (
    WorkflowError
) as error:  # the schema said no: one line naming key, value, allowed
    raise WorkflowError(f"Invalid config: {explain(error.__context__)}") from None
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None
EXPERIMENTS = sorted({experiment for experiment, _ in RUNS})
TRAIN = {
    "threads": 1,
    "gpu": 0,
    "mem_mb": 4000,
    "runtime": 120,
    **config.get("train", {}),
}


wildcard_constraints:
    experiment=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_.+-]+",
    dataset=r"mnist|fashion_mnist|digits",


def run_config(wildcards):
    """The run's hyperparameters: plain Python values in sorted key order."""
    return RUNS[(wildcards.experiment, wildcards.run)]


def run_data(wildcards):
    return f"resources/data/{run_config(wildcards)['dataset']}.npz"


def dataset_source(dataset):
    return (config.get("datasets", {}).get(dataset) or {}).get("source")


def dataset_raw_files(wildcards):
    return raw_files(wildcards.dataset, dataset_source(wildcards.dataset))


def download_target(wildcards):
    url, sha256 = download_targets(wildcards.dataset)[wildcards.filename]
    return {"url": url, "sha256": sha256}


def run_outputs(name):
    return [
        f"results/runs/{experiment}/{run}/{name}" for experiment, run in sorted(RUNS)
    ]


def final_outputs():
    return [
        "results/results.md",
        "results/figures/activation_init.png",
        "results/figures/accuracy_depth.png",
        "results/figures/ratio_heatmap.png",
        *expand("results/figures/{experiment}/gradients.png", experiment=EXPERIMENTS),
        *expand("results/figures/{experiment}/steps.png", experiment=EXPERIMENTS),
    ]


def sources(*modules):
    """Files of gradsweep modules, for rules whose outputs should follow their code."""
    return [
        importlib.util.find_spec(f"gradsweep.{module}").origin for module in modules
    ]
