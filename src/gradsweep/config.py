"""Turn a validated config into the list of runs: one dict of plain Python values per run.

Snakemake validates the config's shape against ``workflow/schemas/config.schema.yaml``;
this module checks what a JSON schema cannot (width lists against depth, duplicate runs,
sizes against the dataset) and expands each experiment's grid. It imports no TensorFlow,
so the Snakefile stays fast to parse.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

# Bump when a code change alters what ``train`` produces for the same config: it is one of
# the train rule's params, so Snakemake reruns every train job then and never otherwise.
TRAINER_VERSION = 1

ACTIVATIONS = (
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "softsign",
    "linear",
)
INITS = (
    "normal",
    "scaled_normal",
    "scaled_normal_relu",
    "standard_uniform",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
)
DATASETS = ("mnist", "fashion_mnist", "digits")
LOSSES = ("sigmoid_cross_entropy", "softmax_cross_entropy")
BIAS_INITS = ("normal", "zeros")

# Number of training images (after the validation split) per dataset.
TRAIN_SIZES = {"mnist": 50_000, "fashion_mnist": 50_000, "digits": 1_077}

TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 10,
    "learning_rate": 0.5,
    "l2": 5.0,
    "l2_n": None,  # None: the number of training images
    "loss": "sigmoid_cross_entropy",
    "bias_init": "normal",
    "weight_scale": 1.0,
    "train_subset": None,  # None: all training images; k: the first k
    "probe_size": 1000,
    "trace_every": 1,
}
MODEL_KEYS = ("depth", "width", "widths", "activation", "init", "seed")
GRID_KEYS = MODEL_KEYS + tuple(TRAINING_DEFAULTS)


class ConfigError(ValueError):
    """A config that passed the schema but cannot be run, with a message naming the key."""


def _as_number(experiment: str, key: str, value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; accept it as a number, reject other strings."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(
                f"experiment '{experiment}': {key} = {value!r} is not a number"
            ) from None
    return value


def _grid_points(grid: Mapping[str, Any] | list[Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
    """Cartesian product of each grid mapping; a list of mappings is their union."""
    for sub in grid if isinstance(grid, list) else [grid]:
        keys = sorted(sub)
        for values in itertools.product(*(sub[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))


def _widths(experiment: str, point: Mapping[str, Any]) -> list[int]:
    depth, width, widths = point.get("depth"), point.get("width"), point.get("widths")
    if widths is not None:
        if width is not None:
            raise ConfigError(
                f"experiment '{experiment}': give 'width' or 'widths' in one grid entry, not both"
            )
        if depth is not None and depth != len(widths):
            raise ConfigError(
                f"experiment '{experiment}': widths {list(widths)} has {len(widths)} hidden "
                f"layers but depth is {depth}; drop 'depth' or make them agree"
            )
        return [int(w) for w in widths]
    if depth is None or width is None:
        raise ConfigError(
            f"experiment '{experiment}': each grid entry needs 'depth' and 'width', or 'widths'"
        )
    return [int(width)] * int(depth)


def run_name(run: Mapping[str, Any], varied: Iterable[str] = ()) -> str:
    """Readable, unique-within-experiment name, e.g. ``d4-w100-sigmoid-scaled_normal-s0``."""
    widths = run["widths"]
    w = str(widths[0]) if len(set(widths)) == 1 else "x".join(map(str, widths))
    name = f"d{len(widths)}-w{w}-{run['activation']}-{run['init']}-s{run['seed']}"
    for key in sorted(varied):
        name += f"-{key}{run[key]}"
    return name


def _check_sizes(experiment: str, run: Mapping[str, Any]) -> None:
    n_train = TRAIN_SIZES[run["dataset"]]
    if run["train_subset"] is not None:
        if run["train_subset"] > n_train:
            raise ConfigError(
                f"experiment '{experiment}': train_subset = {run['train_subset']} is larger "
                f"than the {n_train} training images of '{run['dataset']}'"
            )
        n_train = run["train_subset"]
    for key in ("batch_size", "probe_size"):
        if run[key] > n_train:
            raise ConfigError(
                f"experiment '{experiment}': {key} = {run[key]} is larger than the {n_train} "
                f"training images of '{run['dataset']}' (allowed: 1 to {n_train})"
            )
    if run["learning_rate"] <= 0:
        raise ConfigError(
            f"experiment '{experiment}': learning_rate = {run['learning_rate']} "
            "(allowed: a number > 0)"
        )


def expand_experiment(name: str, exp: Mapping[str, Any], base: Mapping[str, Any]) -> list[dict]:
    """All runs of one experiment, each a flat dict of plain values in sorted key order."""
    training = {**TRAINING_DEFAULTS, **base, **exp.get("training", {})}
    points = list(_grid_points(exp["grid"]))
    if not points:
        raise ConfigError(f"experiment '{name}': the grid is empty")
    varied = {
        k for k in TRAINING_DEFAULTS if len({repr(p.get(k, training[k])) for p in points}) > 1
    }
    runs: dict[str, dict] = {}
    for point in points:
        run = {k: v for k, v in {**training, **point}.items() if k in TRAINING_DEFAULTS}
        for key in ("learning_rate", "l2", "weight_scale"):
            run[key] = float(_as_number(name, key, run[key]))
        run.update(
            experiment=name,
            dataset=exp["dataset"],
            widths=_widths(name, point),
            activation=point["activation"],
            init=point["init"],
            seed=int(point.get("seed", 0)),
            trainer_version=TRAINER_VERSION,
        )
        _check_sizes(name, run)
        run["run"] = run_name(run, varied)
        if run["run"] in runs:
            raise ConfigError(
                f"experiment '{name}': the grid lists run '{run['run']}' twice; "
                "remove the duplicate value"
            )
        runs[run["run"]] = {k: run[k] for k in sorted(run)}
    return list(runs.values())


def expand_runs(config: Mapping[str, Any]) -> list[dict]:
    """Every run of every experiment in the config (already schema-validated)."""
    experiments = config.get("experiments") or {}
    if not experiments:
        raise ConfigError("the config has no experiments (key 'experiments')")
    base = config.get("training", {})
    return [run for name, exp in experiments.items() for run in expand_experiment(name, exp, base)]


def _location(path: list) -> str:
    """``['experiments', 'x', 'grid', 'activation', 1]`` → "experiment 'x': grid.activation[1]"."""
    prefix = ""
    if len(path) >= 2 and path[0] == "experiments":
        prefix, path = f"experiment '{path[1]}': ", path[2:]
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return prefix + (where or "the config")


def explain(error: Any) -> str:
    """One line for a jsonschema ``ValidationError``: experiment, key, value, what is allowed."""
    loc, value, rule = _location(list(error.absolute_path)), error.instance, error.validator_value
    match error.validator:
        case "enum":
            return f"{loc} = {value!r} is not allowed; allowed: {', '.join(map(str, rule))}"
        case "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            unknown = sorted(set(value) - set(allowed))
            return (
                f"{loc}: unknown key {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
            )
        case "required":
            return f"{loc}: {error.message.replace('is a required property', 'is missing')}"
        case "minimum" | "exclusiveMinimum":
            op = ">=" if error.validator == "minimum" else ">"
            return f"{loc} = {value!r} is too small; allowed: {op} {rule}"
        case "minItems" | "minProperties":
            return f"{loc} is empty; give at least {rule}"
        case "type":
            kinds = rule if isinstance(rule, list) else [rule]
            return f"{loc} = {value!r} has the wrong type; allowed: {' or '.join(kinds)}"
        case "pattern":
            return f"{loc} = {value!r} is not allowed (must match {rule})"
    return f"{loc}: {error.message}"
