from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO

from gradsweep.config import (
    TRAINER_VERSION,
    ConfigError,
    expand_runs,
    run_name,
    setting,
    sweep_name,
)


def config(**experiment):
    base = {
        "dataset": "digits",
        "grid": {"depth": [1], "width": [8], "activation": ["relu"], "init": ["he_normal"]},
    }
    return {"experiments": {"exp": {**base, **experiment}}}


def test_grid_is_the_cartesian_product_with_readable_names():
    runs = expand_runs(
        config(
            grid={
                "depth": [1, 4],
                "width": [16],
                "activation": ["sigmoid", "relu"],
                "init": ["scaled_normal", "he_normal"],
                "seed": [0, 1],
            }
        )
    )
    assert len(runs) == 2 * 2 * 2 * 2
    names = {r["run"] for r in runs}
    assert "d4-w16-sigmoid-scaled_normal-s1" in names
    assert len(names) == len(runs)
    deep = next(r for r in runs if r["run"] == "d4-w16-relu-he_normal-s0")
    assert deep["widths"] == [16, 16, 16, 16]
    assert deep["trainer_version"] == TRAINER_VERSION


def test_explicit_width_lists_and_union_of_grid_entries():
    runs = expand_runs(
        config(
            grid=[
                {"depth": [1], "width": [100], "activation": ["relu"], "init": ["he_normal"]},
                {
                    "widths": [[500, 300, 150, 50]],
                    "activation": ["relu"],
                    "init": ["he_normal"],
                    "epochs": [60],
                },
            ]
        )
    )
    by_name = {r["run"]: r for r in runs}
    assert set(by_name) == {
        "d1-w100-relu-he_normal-s0-epochs30",
        "d4-w500x300x150x50-relu-he_normal-s0-epochs60",
    }
    assert by_name["d4-w500x300x150x50-relu-he_normal-s0-epochs60"]["epochs"] == 60


def test_training_settings_merge_defaults_config_experiment_and_grid():
    cfg = config(training={"learning_rate": "1e-3", "epochs": 2})
    cfg["training"] = {"batch_size": 20, "epochs": 5}
    (run,) = expand_runs(cfg)
    assert run["learning_rate"] == pytest.approx(1e-3)  # YAML's string "1e-3" is a number
    assert isinstance(run["learning_rate"], float)
    assert run["epochs"] == 2 and run["batch_size"] == 20 and run["l2"] == 5.0


def test_params_are_plain_python_in_sorted_order():
    (run,) = expand_runs(config())
    assert list(run) == sorted(run)
    assert all(type(v) in (int, float, str, list, type(None)) for v in run.values())


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (
            {"depth": [2], "widths": [[8, 8, 8]], "activation": ["relu"], "init": ["he_normal"]},
            "has 3 hidden layers but depth is 2",
        ),
        ({"depth": [1, 1], "width": [8], "activation": ["relu"], "init": ["he_normal"]}, "twice"),
        ({"width": [8], "activation": ["relu"], "init": ["he_normal"]}, "needs 'depth'"),
        (
            {
                "depth": [1],
                "width": [8],
                "activation": ["relu"],
                "init": ["he_normal"],
                "batch_size": [5000],
            },
            "batch_size = 5000 is larger than the 1077",
        ),
        (
            {
                "depth": [1],
                "width": [8],
                "activation": ["relu"],
                "init": ["he_normal"],
                "learning_rate": ["fast"],
            },
            "learning_rate = 'fast' is not a number",
        ),
    ],
)
def test_semantic_errors_name_experiment_key_and_value(grid, message):
    with pytest.raises(ConfigError, match="experiment 'exp'") as err:
        expand_runs(config(grid=grid))
    assert message in str(err.value)


def test_run_name_lists_varied_training_keys():
    run = {
        "widths": [3, 2],
        "activation": "tanh",
        "init": "normal",
        "seed": 2,
        "learning_rate": 0.1,
    }
    assert run_name(run, ["learning_rate"]) == "d2-w3x2-tanh-normal-s2-learning_rate0.1"


def remedy_grid(**axes):
    return config(
        grid={"depth": [3], "width": [8], "activation": ["sigmoid"], "init": ["scaled_normal"],
              **axes}
    )  # fmt: skip


def test_remedy_axes_enter_a_run_only_when_not_default():
    runs = expand_runs(
        remedy_grid(optimizer=["sgd", "adam"], normalization=["none", "batch_norm"],
                    residual=[False, True])
    )  # fmt: skip
    assert len(runs) == 8
    by_name = {r["run"]: r for r in runs}
    plain = by_name["d3-w8-sigmoid-scaled_normal-s0"]
    assert not {"optimizer", "nesterov", "normalization", "residual"} & set(plain)
    full = by_name["d3-w8-sigmoid-scaled_normal-s0-normalizationbatch_norm-optimizeradam-residual"]
    assert (full["optimizer"], full["normalization"], full["residual"]) == (
        "adam",
        "batch_norm",
        True,
    )
    assert "nesterov" not in full
    assert {setting(r, "optimizer") for r in runs} == {"sgd", "adam"}
    assert all(list(r) == sorted(r) for r in runs)


def test_remedy_settings_from_training_blocks_and_not_in_the_name_unless_varied():
    cfg = remedy_grid()
    cfg["training"] = {"optimizer": "momentum", "nesterov": True}
    cfg["experiments"]["exp"]["training"] = {"normalization": "layer_norm"}
    (run,) = expand_runs(cfg)
    assert run["run"] == "d3-w8-sigmoid-scaled_normal-s0"
    assert (run["optimizer"], run["nesterov"], run["normalization"]) == (
        "momentum", True, "layer_norm"
    )  # fmt: skip
    assert "residual" not in run


def test_defaults_written_out_give_the_same_runs_as_before():
    """Spelling out the defaults changes nothing: same run dicts (same hash, cache, params)."""
    before = expand_runs(remedy_grid())
    spelled = expand_runs(
        remedy_grid(optimizer=["sgd"], nesterov=[False], normalization=["none"], residual=[False])
    )
    assert spelled == before


def test_residual_needs_equal_widths_but_depth_one_is_fine():
    (run,) = expand_runs(
        config(grid={"depth": [1], "width": [8], "activation": ["relu"], "init": ["he_normal"],
                     "residual": [True]})
    )  # fmt: skip
    assert run["residual"] is True
    with pytest.raises(ConfigError) as err:
        expand_runs(
            config(grid={"widths": [[100, 50, 50]], "activation": ["relu"], "init": ["he_normal"],
                         "residual": [True]})
        )  # fmt: skip
    assert "experiment 'exp': residual = true needs equal hidden widths" in str(err.value)
    assert "widths = [100, 50, 50]" in str(err.value)


def test_nesterov_needs_momentum():
    runs = expand_runs(remedy_grid(optimizer=["momentum"], nesterov=[False, True]))
    assert [r["run"] for r in runs] == [
        "d3-w8-sigmoid-scaled_normal-s0",
        "d3-w8-sigmoid-scaled_normal-s0-nesterov",
    ]
    with pytest.raises(ConfigError, match="nesterov = true needs optimizer = momentum"):
        expand_runs(remedy_grid(optimizer=["sgd", "momentum"], nesterov=[True]))


@pytest.mark.parametrize(
    ("default_file", "fashion_file"),
    [("config.yaml", "fashion.yaml"), ("edge_of_chaos.yaml", "edge_of_chaos_fashion.yaml")],
)
def test_fashion_config_mirrors_the_default_sweep(default_file, fashion_file):
    """config/fashion.yaml is config/config.yaml with every experiment on Fashion-MNIST (and
    edge_of_chaos_fashion.yaml edge_of_chaos.yaml): same experiments, settings, grids and
    references (their headers say this test checks it)."""
    default = yaml.safe_load((REPO / "config" / default_file).read_text())
    fashion = yaml.safe_load((REPO / "config" / fashion_file).read_text())
    assert {e["dataset"] for e in fashion["experiments"].values()} == {"fashion_mnist"}
    moved = {
        name: {**exp, "dataset": "fashion_mnist"} for name, exp in default["experiments"].items()
    }
    assert fashion["experiments"] == moved
    assert {k: v for k, v in fashion.items() if k != "experiments"} == {
        k: v for k, v in default.items() if k != "experiments"
    }


def schema_keys(node: object) -> set[str]:
    """Every property name anywhere in the schema."""
    if isinstance(node, dict):
        own = set(node.get("properties", {})) if isinstance(node.get("properties"), dict) else set()
        return own | {k for v in node.values() for k in schema_keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in schema_keys(v)}
    return set()


def test_config_readme_documents_every_key_and_choice():
    """config/README.md names every key the schema allows and every name it accepts."""
    from gradsweep import reference, registry

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    readme = (REPO / "config/README.md").read_text()
    keys = schema_keys(schema)
    assert {"source", "threads", "epochs", "grid", "widths", "metric", "value"} <= keys
    names = {n for ns in registry.CHOICES.values() for n in ns}
    missing = sorted(
        name for name in keys | names | set(reference.METRICS) if f"`{name}`" not in readme
    )
    assert not missing, f"config/README.md does not mention {missing}"


def test_readme_example_config_is_valid_and_uses_the_loss_that_trains():
    """The README's example sweep passes the schema, expands to the runs it promises, and uses
    the averaged loss: the summed one at eta = 0.5 diverges for ReLU (README, The experiments)."""
    from jsonschema import Draft202012Validator

    readme = (REPO / "README.md").read_text()
    example = yaml.safe_load(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert not list(Draft202012Validator(schema).iter_errors(example))
    runs = expand_runs(example)
    assert len(runs) == 36 and "36 runs" in readme
    assert {r["loss"] for r in runs} == {"sigmoid_cross_entropy_mean"}
    assert {r["learning_rate"] for r in runs} == {0.5}


def test_weight_and_bias_variance_axes_enter_a_run_only_when_given():
    """Unset (or spelled null) they stay out of the run, so its hash, cache key and name are
    those of before; given, they are numbers in the run and in its name where they vary."""
    before = expand_runs(remedy_grid())
    assert expand_runs(remedy_grid(weight_variance=[None], bias_variance=[None])) == before
    assert not {"weight_variance", "bias_variance"} & set(before[0])
    runs = expand_runs(remedy_grid(weight_variance=[None, "1.76", 3], bias_variance=[0.05]))
    by_name = {r["run"]: r for r in runs}
    assert sorted(by_name) == [
        "d3-w8-sigmoid-scaled_normal-s0",
        "d3-w8-sigmoid-scaled_normal-s0-weight_variance1.76",
        "d3-w8-sigmoid-scaled_normal-s0-weight_variance3.0",
    ]
    assert [setting(by_name[n], "weight_variance") for n in sorted(by_name)] == [None, 1.76, 3.0]
    assert {r["bias_variance"] for r in runs} == {0.05}  # a number, not in the name (not varied)
    orthogonal = remedy_grid(weight_variance=[2.0])
    orthogonal["experiments"]["exp"]["grid"]["init"] = ["orthogonal"]
    assert expand_runs(orthogonal)[0]["weight_variance"] == 2.0


def test_sweep_name_is_the_key_else_the_last_config_files_stem_else_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    smoke = config()
    assert sweep_name(smoke) == "default"  # no --configfile: config/config.yaml
    assert sweep_name(smoke, ["config/config.yaml"]) == "default"  # passed explicitly
    assert sweep_name(smoke, [tmp_path / "config" / "config.yaml"]) == "default"  # absolute
    assert sweep_name(smoke, [Path("config/smoke.yaml")]) == "smoke"
    assert sweep_name(smoke, ["config/smoke.yaml", "/elsewhere/fashion.yaml"]) == "fashion"
    assert sweep_name(smoke, ["other/config.yaml"]) == "config"  # not the default config
    # characters a folder name should not hold become _
    assert sweep_name(smoke, ["my sweep.v2.yaml"]) == "my_sweep_v2"
    named = {**smoke, "sweep": "mine"}
    assert sweep_name(named, ["config/smoke.yaml"]) == sweep_name(named) == "mine"


@pytest.mark.parametrize(
    ("cfg", "files", "message"),
    [
        ({"sweep": "cache"}, [], "sweep = 'cache' is not allowed (results/cache/ is the run cache"),
        ({}, ["sweeps/cache.yaml"], "sweep = 'cache' is not allowed"),
        ({"sweep": "a/b"}, [], "sweep = 'a/b' is not allowed; allowed: letters, digits, _ and -"),
    ],
)
def test_sweep_name_refuses_the_run_cache_and_paths(cfg, files, message):
    with pytest.raises(ConfigError) as error:
        sweep_name({**config(), **cfg}, files)
    assert message in str(error.value)
