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
    "orthogonal",
)
# The inits a config's `weight_variance` (σ_w²) may set: N(0, σ_w²/fan_in), and Keras'
# Orthogonal with gain √σ_w² (gradsweep.config checks it, gradsweep.model draws them).
WEIGHT_VARIANCE_INITS = ("scaled_normal", "orthogonal")
LOSSES = ("sigmoid_cross_entropy", "sigmoid_cross_entropy_mean", "softmax_cross_entropy")
BIAS_INITS = ("normal", "zeros")
# The remedies of issue 15 (defaults: gradsweep.config.REMEDY_DEFAULTS). sgd is plain
# mini-batch SGD (the seed's), momentum is heavy-ball momentum 0.9 (with the `nesterov` flag),
# adam uses Keras' defaults. Normalization sits before the activation of each hidden layer.
OPTIMIZERS = ("sgd", "momentum", "adam")
NORMALIZATIONS = ("none", "batch_norm", "layer_norm")
DATASETS = tuple(_DATASET_SPECS)

# choice → its names; each key is also the name of the schema's `$defs` entry with that enum.
CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "init": INITS,
    "loss": LOSSES,
    "bias_init": BIAS_INITS,
    "optimizer": OPTIMIZERS,
    "normalization": NORMALIZATIONS,
    "dataset": DATASETS,
}
