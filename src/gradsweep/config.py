"""Turn a validated config into the list of runs: one dict of plain Python values per run.

Snakemake validates the config's shape against ``workflow/schemas/config.schema.yaml``;
this module checks what a JSON schema cannot (width lists against depth, duplicate runs,
sizes against the dataset) and expands each experiment's grid; it names the sweep, whose
outputs go under ``results/<sweep>/`` (:func:`sweep_name`). It imports no TensorFlow, so the
Snakefile stays fast to parse.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gradsweep.data import SourceError, source_files, spec
from gradsweep.registry import WEIGHT_VARIANCE_INITS

# Bump when a code change alters what ``train`` produces for the same config: it is one of
# the train rule's params, so Snakemake reruns every train job then and never otherwise.
TRAINER_VERSION = 2

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
# The remedies (issue 15): settings added after TRAINER_VERSION 2. A run's config holds one only
# when it differs from its default here, so every earlier config keeps its hash, its cache
# entry and its train params (nothing is retrained); read them with :func:`setting`.
REMEDY_DEFAULTS: dict[str, Any] = {
    "optimizer": "sgd",  # sgd | momentum (0.9) | adam (Keras' defaults)
    "nesterov": False,  # momentum only
    "normalization": "none",  # none | batch_norm | layer_norm (before the activation)
    "residual": False,  # identity shortcut around each hidden layer after the first
}
# The init in mean-field terms (issue 23), added the same way: W ~ N(0, σ_w²/fan_in) for
# ``weight_variance`` σ_w² (inits WEIGHT_VARIANCE_INITS), b ~ N(0, σ_b²) for ``bias_variance``;
# None: the init's own variance (gradsweep.theory reads it).
INIT_DEFAULTS: dict[str, Any] = {"weight_variance": None, "bias_variance": None}
# Every setting a run's config holds only when it is not its default.
OPTIONAL_DEFAULTS: dict[str, Any] = {**REMEDY_DEFAULTS, **INIT_DEFAULTS}
MODEL_KEYS = ("depth", "width", "widths", "activation", "init", "seed")
GRID_KEYS = MODEL_KEYS + tuple(TRAINING_DEFAULTS) + tuple(OPTIONAL_DEFAULTS)


def setting(cfg: Mapping[str, Any], key: str) -> Any:
    """A run's value of ``key``, its default where the config leaves an optional setting out."""
    return cfg[key] if key in cfg else OPTIONAL_DEFAULTS[key]


class ConfigError(ValueError):
    """A config that passed the schema but cannot be run, with a message naming the key."""


# Lower bounds of the float settings; YAML strings such as "1e-3" bypass the schema's.
FLOAT_BOUNDS = {"learning_rate": (">", 0.0), "l2": (">=", 0.0), "weight_scale": (">", 0.0)}
INIT_BOUNDS = {"weight_variance": (">", 0.0), "bias_variance": (">=", 0.0)}
INT_KEYS = ("epochs", "batch_size", "probe_size", "trace_every", "train_subset", "l2_n")


def _as_number(experiment: str, key: str, value: Any) -> float:
    """YAML 1.1 reads ``1e-3`` as a string; accept it as a number, reject other strings,
    NaN, infinities and values out of bounds."""
    op, bound = {**FLOAT_BOUNDS, **INIT_BOUNDS}[key]
    allowed = f"allowed: a finite number {op} {bound:g}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"experiment '{experiment}': {key} = {value!r} is not a number; {allowed}"
        ) from None
    if not math.isfinite(number) or (number <= bound if op == ">" else number < bound):
        raise ConfigError(
            f"experiment '{experiment}': {key} = {value!r} is out of range; {allowed}"
        )
    return number


def _check_axes(experiment: str, grid: Mapping[str, Any] | list[Mapping[str, Any]]) -> None:
    """A value listed twice on one axis would give the same run twice."""
    subs = grid if isinstance(grid, list) else [grid]
    for i, sub in enumerate(subs):
        where = f"grid[{i}]" if isinstance(grid, list) else "grid"
        for key, values in sub.items():
            seen: set[str] = set()
            for value in values:
                if repr(value) in seen:
                    raise ConfigError(
                        f"experiment '{experiment}': {where}.{key} = {list(values)!r} lists "
                        f"{value!r} twice; allowed: each value once"
                    )
                seen.add(repr(value))


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
                f"experiment '{experiment}': grid has both width = {width} and widths = "
                f"{list(widths)}; allowed: 'width' or 'widths' in one grid entry, not both"
            )
        if depth is not None and depth != len(widths):
            raise ConfigError(
                f"experiment '{experiment}': widths = {list(widths)} has {len(widths)} hidden "
                f"layers but depth is {depth}; allowed: a depth equal to the number of widths, "
                "or no depth"
            )
        return [int(w) for w in widths]
    if depth is None or width is None:
        missing = "depth" if depth is None else "width"
        raise ConfigError(
            f"experiment '{experiment}': the grid needs '{missing}'; allowed: 'depth' and "
            "'width', or 'widths' (one list of widths per net)"
        )
    return [int(width)] * int(depth)


def run_name(run: Mapping[str, Any], varied: Iterable[str] = ()) -> str:
    """Readable, unique-within-experiment name, e.g. ``d4-w100-sigmoid-scaled_normal-s0``.

    Each varied training key is appended as ``-<key><value>`` (``-learning_rate0.1``); a
    varied optional key only where the run's value is not its default: ``-optimizeradam``,
    ``-normalizationbatch_norm``, ``-residual``, ``-nesterov``, ``-weight_variance1.5`` (so a
    run with the defaults keeps the name it had before those axes existed)."""
    widths = run["widths"]
    w = str(widths[0]) if len(set(widths)) == 1 else "x".join(map(str, widths))
    name = f"d{len(widths)}-w{w}-{run['activation']}-{run['init']}-s{run['seed']}"
    for key in sorted(varied):
        if key in OPTIONAL_DEFAULTS:
            value = setting(run, key)
            if value != OPTIONAL_DEFAULTS[key]:
                name += f"-{key}" if value is True else f"-{key}{value}"
        else:
            name += f"-{key}{run[key]}"
    return name


def _check_remedies(experiment: str, run: Mapping[str, Any]) -> None:
    """What the schema cannot see: nesterov needs momentum, residual needs equal widths."""
    optimizer = setting(run, "optimizer")
    if setting(run, "nesterov") and optimizer != "momentum":
        raise ConfigError(
            f"experiment '{experiment}': nesterov = true needs optimizer = momentum, but "
            f"optimizer = {optimizer!r}; allowed: nesterov: true only with optimizer: momentum"
        )
    widths = list(run["widths"])
    if setting(run, "residual") and len(set(widths)) > 1:
        raise ConfigError(
            f"experiment '{experiment}': residual = true needs equal hidden widths (an "
            "identity shortcut around each hidden layer after the first); widths = "
            f"{widths}; allowed: residual = false, or one width for every hidden layer"
        )


def _check_init_variances(experiment: str, run: Mapping[str, Any]) -> None:
    """weight_variance sets an init's σ_w² (WEIGHT_VARIANCE_INITS only, not on top of a
    weight_scale); bias_variance replaces the normal bias init's variance."""
    weight_variance = setting(run, "weight_variance")
    if weight_variance is not None and run["init"] not in WEIGHT_VARIANCE_INITS:
        raise ConfigError(
            f"experiment '{experiment}': weight_variance = {weight_variance!r} with init = "
            f"{run['init']!r}; allowed: weight_variance only with init "
            f"{' or '.join(WEIGHT_VARIANCE_INITS)} (W ~ N(0, σ_w²/fan_in), or orthogonal with "
            "gain √σ_w²), or weight_variance: null"
        )
    if weight_variance is not None and run["weight_scale"] != 1.0:
        raise ConfigError(
            f"experiment '{experiment}': weight_variance = {weight_variance!r} with "
            f"weight_scale = {run['weight_scale']!r}; allowed: one of them (weight_scale s "
            "multiplies σ_w² by s²), weight_scale: 1 with weight_variance"
        )
    bias_variance = setting(run, "bias_variance")
    if bias_variance is not None and run["bias_init"] != "normal":
        raise ConfigError(
            f"experiment '{experiment}': bias_variance = {bias_variance!r} with bias_init = "
            f"{run['bias_init']!r}; allowed: bias_variance with bias_init: normal (it sets that "
            "normal's variance; 0 gives zero biases), or bias_variance: null"
        )


def _check_sizes(experiment: str, run: Mapping[str, Any]) -> None:
    n_train = spec(run["dataset"]).n_train
    keys = ("train_subset", "batch_size", "probe_size")
    for key in keys:
        if run[key] is not None and run[key] > n_train:
            raise ConfigError(
                f"experiment '{experiment}': {key} = {run[key]} is larger than the {n_train} "
                f"training images of '{run['dataset']}'; allowed: 1 to {n_train}"
            )
        if key == "train_subset" and run[key] is not None:
            n_train = run[key]


def expand_experiment(name: str, exp: Mapping[str, Any], base: Mapping[str, Any]) -> list[dict]:
    """All runs of one experiment, each a flat dict of plain values in sorted key order."""
    training = {**TRAINING_DEFAULTS, **OPTIONAL_DEFAULTS, **base, **exp.get("training", {})}
    _check_axes(name, exp["grid"])
    points = list(_grid_points(exp["grid"]))
    if not points:
        raise ConfigError(f"experiment '{name}': grid is empty; allowed: at least one run")
    settings = (*TRAINING_DEFAULTS, *OPTIONAL_DEFAULTS)
    varied = {k for k in settings if len({repr(p.get(k, training[k])) for p in points}) > 1}
    runs: dict[str, dict] = {}
    for point in points:
        run = {k: v for k, v in {**training, **point}.items() if k in TRAINING_DEFAULTS}
        # an optional setting enters the run only when it is not its default (OPTIONAL_DEFAULTS)
        for key, default in OPTIONAL_DEFAULTS.items():
            value = point.get(key, training[key])
            if value != default:
                run[key] = value
        for key in [*FLOAT_BOUNDS, *(k for k in INIT_BOUNDS if k in run)]:
            run[key] = _as_number(name, key, run[key])
        for key in INT_KEYS:  # YAML's 3.0 passes the schema as an integer
            run[key] = None if run[key] is None else int(run[key])
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
        _check_remedies(name, run)
        _check_init_variances(name, run)
        run["run"] = run_name(run, varied)
        if run["run"] in runs:
            raise ConfigError(
                f"experiment '{name}': grid gives run '{run['run']}' twice (equal values "
                "written differently, or overlapping grid entries); allowed: each run once"
            )
        runs[run["run"]] = {k: run[k] for k in sorted(run)}
    return list(runs.values())


def expand_runs(config: Mapping[str, Any]) -> list[dict]:
    """Every run of every experiment in the config (already schema-validated)."""
    experiments = config.get("experiments") or {}
    if not experiments:
        raise ConfigError("experiments is empty; allowed: at least one experiment")
    base = config.get("training", {})
    return [run for name, exp in experiments.items() for run in expand_experiment(name, exp, base)]


# A sweep's outputs go under results/<sweep>/ (docs/outputs.md); results/cache/ is the run cache
# every sweep shares, so no sweep may be called "cache".
DEFAULT_CONFIGFILE = "config/config.yaml"
DEFAULT_SWEEP = "default"
SWEEP_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
RESERVED_SWEEPS = ("cache",)


def sweep_name(
    config: Mapping[str, Any],
    configfiles: Sequence[str | os.PathLike] = (),
    default_configfile: str | os.PathLike = DEFAULT_CONFIGFILE,
) -> str:
    """The sweep's name, its folder under ``results/`` and ``logs/``: the config's ``sweep`` key
    if set; else the stem of the last of ``configfiles`` (Snakemake's ``--configfile``), with
    characters a name may not hold made ``_``; ``default`` for the default config (none given,
    or ``default_configfile`` itself, relative paths against the working directory).

    Snakemake gives cluster jobs the same ``--configfile`` and ``--config`` arguments, so a job
    finds the same name as the main process.
    """
    if config.get("sweep") is not None:
        name = str(config["sweep"])
        if not SWEEP_NAME.match(name):
            raise ConfigError(f"sweep = {name!r} is not allowed; allowed: letters, digits, _ and -")
    elif not configfiles or Path(configfiles[-1]).resolve() == Path(default_configfile).resolve():
        name = DEFAULT_SWEEP
    else:
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(configfiles[-1]).stem)
    if name in RESERVED_SWEEPS:
        raise ConfigError(
            f"sweep = {name!r} is not allowed (results/{name}/ is the run cache every sweep "
            "shares); allowed: any other name, set with the config's `sweep:` key"
        )
    return name


def check_sources(config: Mapping[str, Any]) -> None:
    """A dataset's local ``source`` (if set, and the dataset is used) holds an accepted form.

    Only names are checked here (this runs whenever the Snakefile is parsed); the prepare
    step checks every file's hash.
    """
    for dataset, entry in (config.get("datasets") or {}).items():
        users = sorted(n for n, e in config["experiments"].items() if e["dataset"] == dataset)
        source = (entry or {}).get("source")
        if not users or not source:
            continue
        try:
            source_files(dataset, source)
        except SourceError as err:
            raise ConfigError(
                f"experiment '{users[0]}': datasets.{dataset}.source = {source!r} cannot be "
                f"used ({err.problem}); allowed: {err.allowed}"
            ) from None


def _dotted(path: list) -> str:
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def _location(path: list) -> str:
    """``['experiments', 'x', 'grid', 'activation', 1]`` → "experiment 'x': grid.activation[1]"."""
    if len(path) >= 2 and path[0] == "experiments":
        experiment, where = f"experiment '{path[1]}'", _dotted(path[2:])
        return f"{experiment}: {where}" if where else experiment
    return _dotted(path) or "the config"


_KINDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
    "boolean": "true or false",
}


def _allowed_kind(schema: Mapping[str, Any]) -> str:
    """What a schema accepts, in words; numbers may be written as YAML strings like 1e-3."""
    if "pattern" in schema and "number" in (schema.get("type") or []):  # numbers as strings too
        return "a number"
    kinds = schema.get("type", [])
    return " or ".join(_KINDS.get(k, k) for k in ([kinds] if isinstance(kinds, str) else kinds))


def explain(error: Any) -> str:
    """One line for a jsonschema ``ValidationError``: experiment, key, value, what is allowed."""
    loc, value, rule = _location(list(error.absolute_path)), error.instance, error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    match error.validator:
        case "enum":
            return f"{loc} = {value!r} is not allowed; allowed: {', '.join(map(str, rule))}"
        case "additionalProperties":
            allowed = sorted(schema.get("properties", {}))
            unknown = sorted(set(value) - set(allowed))
            hint = difflib.get_close_matches(unknown[0], allowed, n=1) if unknown else []
            guess = f" (did you mean '{hint[0]}'?)" if hint else ""
            keys = ", ".join(map(repr, unknown))
            return f"{loc}: unknown key {keys}{guess}; allowed: {', '.join(allowed)}"
        case "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            shown = f" = {value!r}" if len(repr(value)) <= 40 else ""
            return (
                f"{loc}{shown}: '{missing}' is missing; allowed: a mapping with {', '.join(rule)}"
            )
        case "minimum" | "exclusiveMinimum":
            op = ">=" if error.validator == "minimum" else ">"
            kind = "an integer" if "integer" in schema.get("type", []) else "a number"
            return f"{loc} = {value!r} is too small; allowed: {kind} {op} {rule}"
        case "minItems" | "minProperties":
            return f"{loc} = {value!r} is empty; allowed: at least {rule} entry"
        case "type":
            return f"{loc} = {value!r} has the wrong type; allowed: {_allowed_kind(schema)}"
        case "pattern" if "propertyNames" in error.relative_schema_path:
            return (
                f"experiment name {value!r} is not allowed; allowed: letters, digits and _ "
                f"(must match {rule})"
            )
        case "pattern" if _allowed_kind(schema) == "a number":
            return f"{loc} = {value!r} is not a number; allowed: a number such as 0.5 or 1e-3"
        case "pattern":
            return f"{loc} = {value!r} is not allowed; allowed: text matching {rule}"
    return f"{loc} = {value!r}: {error.message}"


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask on Linux, elsewhere every CPU."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1
