"""One source of truth: gradsweep.registry's lists are the schema's enums and exactly what the
code implements."""

from __future__ import annotations

import pytest
import yaml
from workflow_helpers import REPO

from gradsweep import data, model, reference, registry
from gradsweep.config import GRID_KEYS, REMEDY_DEFAULTS, TRAINING_DEFAULTS

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
DEFS = SCHEMA["$defs"]
SCHEMA_GRID = DEFS["grid_entry"]["properties"]


@pytest.mark.parametrize("choice", list(registry.CHOICES))
def test_schema_enum_is_the_registry_list(choice: str) -> None:
    names = list(registry.CHOICES[choice])
    assert DEFS[choice]["enum"] == names
    if choice != "dataset":  # every other choice is a grid axis
        assert choice in GRID_KEYS
        assert SCHEMA_GRID[choice]["items"] == {"$ref": f"#/$defs/{choice}"}
    if choice in {*TRAINING_DEFAULTS, *REMEDY_DEFAULTS}:  # and a `training:` key
        assert DEFS["training"]["properties"][choice]["$ref"] == f"#/$defs/{choice}"


def test_remedy_axes_are_the_issue_15_names() -> None:
    """The remedy axes (issue 15) and their defaults, which every earlier config keeps."""
    assert registry.OPTIMIZERS == ("sgd", "momentum", "adam")
    assert registry.NORMALIZATIONS == ("none", "batch_norm", "layer_norm")
    assert REMEDY_DEFAULTS == {
        "optimizer": "sgd",
        "nesterov": False,
        "normalization": "none",
        "residual": False,
    }
    for flag in ("nesterov", "residual"):
        assert SCHEMA_GRID[flag]["items"] == {"type": "boolean"}
        assert DEFS["training"]["properties"][flag]["type"] == "boolean"


def enums(node: object, path: tuple = ()) -> list[tuple[tuple, list]]:
    """Every ``enum`` in the schema, with where it is."""
    if isinstance(node, dict):
        found = [(path, node["enum"])] if "enum" in node else []
        return found + [hit for k, v in node.items() for hit in enums(v, (*path, k))]
    if isinstance(node, list):
        return [hit for i, v in enumerate(node) for hit in enums(v, (*path, i))]
    return []


def test_every_enum_of_a_choice_is_its_defs_entry() -> None:
    """A choice's names are listed once, under ``$defs``; every key taking them refers there."""
    where = {path: names for path, names in enums(SCHEMA)}
    choices = {path[1] for path in where if path[:1] == ("$defs",)}
    assert choices <= set(registry.CHOICES)
    others = [path for path in where if path[:1] != ("$defs",)]
    assert [path[-1] for path in others] == ["metric"]  # the reference metric (not a choice)


def test_model_implements_exactly_the_registry() -> None:
    assert tuple(model.ACTIVATIONS) == registry.ACTIVATIONS
    assert tuple(model.INITIALIZERS) == registry.INITS
    assert tuple(model.BIAS_INITIALIZERS) == registry.BIAS_INITS
    assert tuple(model.LOSSES) == registry.LOSSES


def test_datasets_are_the_data_registry() -> None:
    # `datasets:` in the config: one entry per dataset that has raw files (a `source`)
    with_files = [name for name, sp in data.DATASETS.items() if sp.files]
    assert list(SCHEMA["properties"]["datasets"]["properties"]) == with_files


def test_reference_metrics_are_the_schema_enum() -> None:
    experiment = SCHEMA["properties"]["experiments"]["additionalProperties"]
    metric = experiment["properties"]["reference"]["properties"]["metric"]
    assert metric["enum"] == list(reference.METRICS)


def test_trainer_implements_the_remedy_names() -> None:
    """The trainer (gradsweep.model / gradsweep.train, the lead's side of issue 15) implements
    exactly the registry's optimizers and normalizations, under the names it exports."""
    from gradsweep import train

    optimizers = getattr(train, "OPTIMIZERS", None) or getattr(model, "OPTIMIZERS", None)
    normalizations = getattr(model, "NORMALIZATIONS", None)
    if optimizers is None or normalizations is None:
        pytest.skip("the trainer side of issue 15 has not landed (no OPTIMIZERS/NORMALIZATIONS)")
    assert tuple(optimizers) == registry.OPTIMIZERS
    assert tuple(normalizations) == registry.NORMALIZATIONS
