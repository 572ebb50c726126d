"""The names a config may use: one list per choice, the single source of truth.

The schema's enums (workflow/schemas/config.schema.yaml) must equal these lists, and the code
that implements each choice (``gradsweep.model``, ``gradsweep.data``) must implement exactly
these names; tests/test_registry.py checks both. To add a choice: add its name here, implement
it, add it to the schema's enum. This module imports nothing heavy (the Snakefile reads it).
"""

from __future__ import annotations

from gradsweep.data.datasets import DATASETS as _DATASET_SPECS

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softsign", "linear")
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
LOSSES = ("sigmoid_cross_entropy", "sigmoid_cross_entropy_mean", "softmax_cross_entropy")
BIAS_INITS = ("normal", "zeros")
# Plain mini-batch SGD is the only optimizer, and the config has no key for it yet. When one
# arrives: list its names here, add the `optimizer` key and enum to the schema (same name as
# below), implement them in gradsweep.train; the registry test then checks all three.
OPTIMIZERS = ("sgd",)
DATASETS = tuple(_DATASET_SPECS)

# choice → its names; each key is also the name of the schema's `$defs` entry with that enum.
CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "init": INITS,
    "loss": LOSSES,
    "bias_init": BIAS_INITS,
    "optimizer": OPTIMIZERS,
    "dataset": DATASETS,
}
