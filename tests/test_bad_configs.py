"""Malformed configs fail fast: real ``snakemake`` exits non-zero before planning any job.

Each case mutates ``config/smoke.yaml``. Every case is checked in-process with the same steps as
``workflow/rules/common.smk`` (schema, then ``expand_runs`` and ``check_sources``); the ``cli``
cases also run the real workflow in a throwaway copy (``snakemake -n``, or ``--cores 1`` for
``real`` ones), whose output must hold exactly that one ``Invalid config:`` line, no traceback
into gradsweep or TensorFlow, and leave nothing under ``results/``.
"""

from __future__ import annotations

import copy
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from workflow_helpers import REPO, copy_workflow

from gradsweep import registry
from gradsweep.config import (
    ConfigError,
    check_sources,
    expand_runs,
    explain,
    sweep_name,
)

SMOKE = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
ENUMS = registry.CHOICES  # the schema's enums (tests/test_registry.py)
EXP = "experiments.smoke"
DELETE = object()


@dataclass(frozen=True)
class Case:
    id: str
    changes: dict[str, Any]  # dotted path -> new value (DELETE removes the key)
    expect: tuple[str, ...]  # fragments of the message: key, bad value, what is allowed
    experiment: str | None = "smoke"  # None: the error is outside any experiment
    cli: bool = True  # also through the real snakemake command line
    real: bool = False  # `snakemake --cores 1` instead of `snakemake -n`


def grid(**axes: Any) -> dict[str, Any]:
    """The smoke grid with some axes replaced (DELETE drops one)."""
    out = {**SMOKE["experiments"]["smoke"]["grid"], **axes}
    return {k: v for k, v in out.items() if v is not DELETE}


CASES = [
    Case(
        "sweep_name_with_a_slash",
        {"sweep": "mine/v2"},
        ("sweep = 'mine/v2' is not allowed", "allowed: text matching ^[A-Za-z0-9_-]+$"),
        experiment=None,
        cli=False,
    ),
    Case(
        "sweep_named_like_the_run_cache",
        {"sweep": "cache"},
        ("sweep = 'cache' is not allowed", "run cache", "allowed: any other name"),
        experiment=None,
    ),
    Case(
        "unknown_activation",
        {f"{EXP}.grid.activation": ["sigmoid", "sigmod"]},
        ("grid.activation[1]", "'sigmod'", "allowed: " + ", ".join(ENUMS["activation"])),
        real=True,
    ),
    Case(
        "unknown_init",
        {f"{EXP}.grid.init": ["xavier"]},
        ("grid.init[0]", "'xavier'", "allowed: " + ", ".join(ENUMS["init"])),
    ),
    Case(
        "unknown_dataset",
        {f"{EXP}.dataset": "cifar10"},
        ("dataset", "'cifar10'", "allowed: mnist, fashion_mnist, digits"),
    ),
    Case(
        "unknown_loss",
        {f"{EXP}.training": {"loss": "mse"}},
        ("training.loss", "'mse'", "allowed: " + ", ".join(ENUMS["loss"])),
    ),
    Case(
        "unknown_bias_init_shared",
        {"training.bias_init": "ones"},
        ("training.bias_init", "'ones'", "allowed: normal, zeros"),
        experiment=None,
        cli=False,
    ),
    Case("depth_zero", {f"{EXP}.grid.depth": [0]}, ("grid.depth[0]", "= 0", "an integer >= 1")),
    Case(
        "depth_negative",
        {f"{EXP}.grid.depth": [1, -2]},
        ("grid.depth[1]", "= -2", "allowed: an integer >= 1"),
    ),
    Case(
        "depth_not_a_list",
        {f"{EXP}.grid.depth": 4},
        ("grid.depth", "= 4", "allowed: a list"),
        cli=False,
    ),
    Case(
        "widths_disagree_with_depth",
        {f"{EXP}.grid": grid(depth=[2], width=DELETE, widths=[[16, 16, 16]])},
        ("widths = [16, 16, 16]", "depth is 2", "allowed: a depth equal to the number of widths"),
    ),
    Case("width_zero", {f"{EXP}.grid.width": [0]}, ("grid.width[0]", "= 0", "an integer >= 1")),
    Case(
        "widths_entry_zero",
        {f"{EXP}.grid": grid(depth=DELETE, width=DELETE, widths=[[16, 0]])},
        ("grid.widths[0][1]", "= 0", "allowed: an integer >= 1"),
        cli=False,
    ),
    Case(
        "width_and_widths",
        {f"{EXP}.grid": grid(depth=DELETE, widths=[[16]])},
        ("width = 16", "widths = [16]", "allowed: 'width' or 'widths'"),
        cli=False,
    ),
    Case(
        "no_depth",
        {f"{EXP}.grid.depth": DELETE},
        ("needs 'depth'", "allowed: 'depth' and 'width', or 'widths'"),
        cli=False,
    ),
    Case(
        "learning_rate_zero",
        {f"{EXP}.training": {"learning_rate": 0}},
        ("training.learning_rate", "= 0", "allowed: a number > 0"),
    ),
    Case(
        "learning_rate_negative_in_grid",
        {f"{EXP}.grid.learning_rate": [0.1, -0.5]},
        ("grid.learning_rate[1]", "= -0.5", "allowed: a number > 0"),
        cli=False,
    ),
    Case(
        "learning_rate_not_a_number",
        {f"{EXP}.training": {"learning_rate": "fast"}},
        ("learning_rate", "'fast' is not a number", "allowed: a number"),
        real=True,
    ),
    Case(
        "learning_rate_negative_string",  # YAML 1.1 reads -1e-3 as a string: the schema's
        {f"{EXP}.training": {"learning_rate": "-1e-3"}},  # minimum cannot see it
        ("learning_rate = '-1e-3'", "allowed: a finite number > 0"),
        cli=False,
    ),
    Case(
        "learning_rate_nan",
        {f"{EXP}.training": {"learning_rate": float("nan")}},
        ("learning_rate = nan", "allowed: a finite number > 0"),
    ),
    Case(
        "l2_negative_string",
        {f"{EXP}.training": {"l2": "-5e0"}},
        ("l2 = '-5e0'", "allowed: a finite number >= 0"),
    ),
    Case(
        "weight_scale_zero",
        {f"{EXP}.training": {"weight_scale": 0}},
        ("training.weight_scale", "= 0", "allowed: a number > 0"),
        cli=False,
    ),
    Case(
        "batch_size_larger_than_data",
        {f"{EXP}.training": {"batch_size": 5000}},
        ("batch_size = 5000", "larger than the 1077 training images", "allowed: 1 to 1077"),
    ),
    Case(
        "batch_size_zero",
        {"training.batch_size": 0},
        ("training.batch_size", "= 0", "allowed: an integer >= 1"),
        experiment=None,
        cli=False,
    ),
    Case(
        "epochs_zero",
        {f"{EXP}.training": {"epochs": 0}},
        ("training.epochs", "= 0", "allowed: an integer >= 1"),
        real=True,
    ),
    Case(
        "epochs_fraction",
        {f"{EXP}.training": {"epochs": 2.5}},
        ("training.epochs", "= 2.5", "allowed: an integer"),
    ),
    Case(
        "epochs_text",
        {f"{EXP}.grid.epochs": ["ten"]},
        ("grid.epochs[0]", "= 'ten'", "allowed: an integer"),
        cli=False,
    ),
    Case("empty_grid_list", {f"{EXP}.grid": []}, ("grid = []", "empty", "allowed: at least 1")),
    Case("empty_grid_mapping", {f"{EXP}.grid": {}}, ("grid = {}", "'activation' is missing")),
    Case(
        "empty_grid_axis",
        {f"{EXP}.grid.activation": []},
        ("grid.activation = []", "empty", "allowed: at least 1"),
        cli=False,
    ),
    Case(
        "no_experiments",
        {"experiments": {}},
        ("experiments = {}", "empty", "allowed: at least 1"),
        experiment=None,
        cli=False,
    ),
    Case(
        "typo_grid_key",
        {f"{EXP}.grid": grid(activation=DELETE, activaton=["relu"])},
        ("grid", "unknown key 'activaton'", "did you mean 'activation'", "allowed: activation,"),
    ),
    Case(
        "typo_training_key",
        {"training.epoch": 3},
        ("training", "unknown key 'epoch'", "did you mean 'epochs'", "allowed: batch_size,"),
        experiment=None,
    ),
    Case(
        "typo_experiment_key",
        {f"{EXP}.datset": "digits"},
        ("unknown key 'datset'", "did you mean 'dataset'", "allowed: dataset, description"),
        cli=False,
    ),
    Case(
        "typo_top_level_key",
        {"trainng": {"epochs": 3}},
        ("unknown key 'trainng'", "did you mean 'training'", "allowed: datasets, experiments"),
        experiment=None,
        cli=False,
    ),
    Case(
        "duplicate_seed",
        {f"{EXP}.grid.seed": [0, 0]},
        ("grid.seed = [0, 0]", "lists 0 twice", "allowed: each value once"),
        real=True,
    ),
    Case(
        "duplicate_run_across_grid_entries",
        {f"{EXP}.grid": [grid(), grid(depth=[4])]},
        ("run 'd4-w16-sigmoid-scaled_normal-s0' twice", "allowed: each run once"),
    ),
    Case(
        "probe_size_larger_than_data",
        {f"{EXP}.training": {"probe_size": 5000}},
        ("probe_size = 5000", "larger than the 1077 training images", "allowed: 1 to 1077"),
        real=True,
    ),
    Case(
        "probe_size_larger_than_train_subset",
        {f"{EXP}.training": {"train_subset": 100}},
        ("probe_size = 500", "larger than the 100 training images", "allowed: 1 to 100"),
        cli=False,
    ),
    Case(
        "train_subset_larger_than_data",
        {f"{EXP}.training": {"train_subset": 2000}},
        ("train_subset = 2000", "larger than the 1077", "allowed: 1 to 1077"),
        cli=False,
    ),
    Case(
        "trace_every_zero",
        {f"{EXP}.grid.trace_every": [0]},
        ("grid.trace_every[0]", "= 0", "allowed: an integer >= 1"),
        cli=False,
    ),
    Case("seed_negative", {f"{EXP}.grid.seed": [-1]}, ("grid.seed[0]", "= -1", ">= 0"), cli=False),
    Case(
        "bad_experiment_name",
        {"experiments": {"my-sweep": SMOKE["experiments"]["smoke"]}},
        ("experiment name 'my-sweep'", "allowed: letters, digits and _"),
        experiment=None,
    ),
    Case(
        "train_threads_zero",
        {"train.threads": 0},
        ("train.threads", "= 0", "allowed: an integer >= 1"),
        experiment=None,
        cli=False,
    ),
    Case(
        "unknown_optimizer",
        {f"{EXP}.grid.optimizer": ["sgd", "rmsprop"]},
        ("grid.optimizer[1]", "'rmsprop'", "allowed: sgd, momentum, adam"),
        cli=False,
    ),
    Case(
        "unknown_normalization_shared",
        {"training.normalization": "group_norm"},
        ("training.normalization", "'group_norm'", "allowed: none, batch_norm, layer_norm"),
        experiment=None,
        cli=False,
    ),
    Case(
        "residual_not_boolean",
        {f"{EXP}.grid.residual": ["yes please"]},
        ("grid.residual[0]", "'yes please'", "allowed: true or false"),
        cli=False,
    ),
    Case(
        "nesterov_without_momentum",
        {f"{EXP}.training": {"optimizer": "adam", "nesterov": True}},
        (
            "nesterov = true needs optimizer = momentum",
            "optimizer = 'adam'",
            "allowed: nesterov: true only with optimizer: momentum",
        ),
        cli=False,
    ),  # fmt: skip
    Case(
        "nesterov_with_default_sgd",
        {f"{EXP}.grid.nesterov": [False, True]},
        ("nesterov = true needs optimizer = momentum", "optimizer = 'sgd'"),
        cli=False,
    ),
    Case(
        "residual_unequal_widths",
        {f"{EXP}.grid": grid(depth=DELETE, width=DELETE, widths=[[100, 50]], residual=[True])},
        (
            "residual = true needs equal hidden widths",
            "widths = [100, 50]",
            "allowed: residual = false, or one width for every hidden layer",
        ),
    ),  # fmt: skip
    Case(
        "weight_variance_with_he_normal",
        {f"{EXP}.grid.weight_variance": [1.5]},
        (
            "experiment 'smoke'",
            "weight_variance = 1.5 with init = 'he_normal'",
            "allowed: weight_variance only with init scaled_normal or orthogonal",
        ),
        cli=False,
    ),  # fmt: skip
    Case(
        "weight_variance_with_weight_scale",
        {
            f"{EXP}.grid.init": ["scaled_normal"],
            f"{EXP}.training": {"weight_scale": 2.0},
            f"{EXP}.grid.weight_variance": [1.5],
        },
        ("weight_variance = 1.5 with weight_scale = 2.0", "allowed: one of them"),
        cli=False,
    ),  # fmt: skip
    Case(
        "weight_variance_zero",
        {f"{EXP}.grid.weight_variance": [0]},
        ("grid.weight_variance[0]", "= 0", "allowed: a number > 0"),
        cli=False,
    ),
    Case(
        "bias_variance_negative",
        {"training.bias_variance": -0.05},
        ("training.bias_variance", "= -0.05", "allowed: a number >= 0"),
        experiment=None,
        cli=False,
    ),
    Case(
        "bias_variance_not_a_number",
        {f"{EXP}.grid.bias_variance": ["small"]},
        ("grid.bias_variance[0]", "'small'", "allowed: a number"),
        cli=False,
    ),
    Case(
        "bias_variance_with_zero_biases",
        {f"{EXP}.training": {"bias_init": "zeros", "bias_variance": 0.05}},
        (
            "experiment 'smoke'",
            "bias_variance = 0.05 with bias_init = 'zeros'",
            "allowed: bias_variance with bias_init: normal",
        ),
        cli=False,
    ),  # fmt: skip
    Case(
        "missing_local_source",
        {f"{EXP}.dataset": "mnist", "datasets": {"mnist": {"source": "/nonexistent/m.npz"}}},
        (
            "datasets.mnist.source = '/nonexistent/m.npz'",
            "no such file or folder",
            "allowed: Keras' mnist.npz (the file, or a folder holding it",
            "or torchvision's download folder",
        ),
        real=True,
    ),
]


def mutated(changes: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(SMOKE)
    for path, value in changes.items():
        *parents, key = path.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            del node[key]
        else:
            node[key] = copy.deepcopy(value)
    return config


def in_process(config: dict[str, Any]) -> str:
    """The message of workflow/rules/common.smk; Snakemake raises the schema's first error."""
    error = next(iter(Draft202012Validator(SCHEMA).iter_errors(config)), None)
    if error is not None:
        return f"Invalid config: {explain(error)}"
    try:
        expand_runs(config)
        check_sources(config)
        sweep_name(config, ["bad.yaml"])  # run_case's --configfile
    except ConfigError as err:
        return f"Invalid config: {err}"
    return ""


def run_case(root: Path, case: Case) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = copy_workflow(root / case.id)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(mutated(case.changes)))
    mode = ["--cores", "1"] if case.real else ["-n"]
    result = subprocess.run(
        ["snakemake", *mode, "--configfile", "bad.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return workdir, result


CLI = [c for c in CASES if c.cli]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """The cli cases through the real workflow, two at a time (each is a fresh Python)."""
    root = tmp_path_factory.mktemp("bad_configs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda case: run_case(root, case), CLI)
        return {case.id: outcome for case, outcome in zip(CLI, done, strict=True)}


def test_there_are_enough_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 40
    assert len(CLI) >= 20 and sum(c.real for c in CLI) >= 5


@pytest.mark.slow
def test_smoke_config_itself_is_valid(tmp_path):
    assert in_process(mutated({})) == ""
    workdir, result = run_case(tmp_path, Case("valid", {}, ()))
    assert result.returncode == 0, result.stderr
    assert not (workdir / "results").exists()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_message_names_experiment_key_value_and_allowed(case: Case):
    message = in_process(mutated(case.changes))
    assert message.startswith("Invalid config: ")
    if case.experiment:
        assert f"experiment '{case.experiment}'" in message
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "allowed: " in message and "\n" not in message


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI, ids=[c.id for c in CLI])
def test_snakemake_fails_fast_with_that_one_message(outcomes, case: Case):
    workdir, result = outcomes[case.id]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    lines = [line for line in output.splitlines() if "Invalid config:" in line]
    assert lines == [in_process(mutated(case.changes))], output
    # no traceback into gradsweep, TensorFlow or other libraries; no job was planned or run
    assert "Traceback" not in output
    assert not re.search(r'File ".*(/src/gradsweep/|site-packages|tensorflow)', output), output
    assert "Building DAG of jobs" not in output
    for folder in ("results", "resources", "logs"):
        assert not (workdir / folder).exists(), f"{folder}/ was written"


def test_integral_floats_become_ints():
    config = mutated({f"{EXP}.training": {"epochs": 3.0}, f"{EXP}.grid.seed": [0, 1]})
    runs = expand_runs(config)
    assert {type(r["epochs"]) for r in runs} == {int} and runs[0]["epochs"] == 3


@pytest.mark.parametrize("value", ["1e-3", 0.001, "+.1e-2"])
def test_numeric_strings_are_numbers(value):
    (run, *_) = expand_runs(mutated({f"{EXP}.training": {"learning_rate": value}}))
    assert run["learning_rate"] == pytest.approx(1e-3)


@pytest.mark.parametrize("value", [float("inf"), "1e400", "-0.1", 0])
def test_learning_rate_must_be_finite_and_positive(value):
    with pytest.raises(ConfigError, match="experiment 'smoke': learning_rate = .*allowed"):
        expand_runs(mutated({f"{EXP}.training": {"learning_rate": value}}))
