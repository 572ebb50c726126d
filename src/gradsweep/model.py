"""Dense nets as plain ``tf.Variable`` lists, so every layer's weights and gradients are in view.

Implements the activations, inits, bias inits and losses that ``gradsweep.registry`` names
(tests/test_registry.py checks that these tables hold exactly the registry's names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise

import keras
import tensorflow as tf

ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "sigmoid": tf.sigmoid,
    "tanh": tf.tanh,
    "relu": tf.nn.relu,
    "leaky_relu": partial(tf.nn.leaky_relu, alpha=0.01),
    "elu": tf.nn.elu,
    "softplus": tf.nn.softplus,
    "softsign": tf.nn.softsign,
    "linear": tf.identity,
}

_VS = keras.initializers.VarianceScaling
INITIALIZERS: dict[str, Callable[[int], keras.initializers.Initializer]] = {
    # N(0, 1): the article's "large" init.
    "normal": lambda seed: keras.initializers.RandomNormal(0.0, 1.0, seed=seed),
    # N(0, 1)/sqrt(fan_in): the article's and Nielsen's default.
    "scaled_normal": lambda seed: _VS(1.0, "fan_in", "untruncated_normal", seed=seed),
    # N(0, 1)/sqrt(fan_in/2): the article's ReLU init (He, untruncated).
    "scaled_normal_relu": lambda seed: _VS(2.0, "fan_in", "untruncated_normal", seed=seed),
    # U[-1/sqrt(fan_in), 1/sqrt(fan_in)]: Glorot & Bengio's "standard" init.
    "standard_uniform": lambda seed: _VS(1.0 / 3.0, "fan_in", "uniform", seed=seed),
    "glorot_normal": lambda seed: keras.initializers.GlorotNormal(seed=seed),
    "glorot_uniform": lambda seed: keras.initializers.GlorotUniform(seed=seed),
    "he_normal": lambda seed: keras.initializers.HeNormal(seed=seed),
    "he_uniform": lambda seed: keras.initializers.HeUniform(seed=seed),
    "lecun_normal": lambda seed: keras.initializers.LecunNormal(seed=seed),
    "lecun_uniform": lambda seed: keras.initializers.LecunUniform(seed=seed),
}

BIAS_INITIALIZERS: dict[str, Callable[[int], keras.initializers.Initializer]] = {
    "normal": lambda seed: keras.initializers.RandomNormal(0.0, 1.0, seed=seed),
    "zeros": lambda seed: keras.initializers.Zeros(),
}


class DenseNet(tf.Module):
    """``sizes = [784, 100, 100, 10]``: input, hidden widths, output; layer l = 1 … L."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str,
        init: str,
        bias_init: str = "normal",
        weight_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.kernels: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []
        for layer, (fan_in, fan_out) in enumerate(pairwise(sizes), start=1):
            # Keras draws a (fan_in, fan_out) kernel; stored transposed, as Nielsen's w^l_jk
            w = INITIALIZERS[init](seed * 1009 + layer)((fan_in, fan_out), dtype="float32")
            w = tf.transpose(w)
            b = BIAS_INITIALIZERS[bias_init](seed * 1013 + layer)((fan_out,))
            self.kernels.append(tf.Variable(w * weight_scale, name=f"W{layer}"))
            self.biases.append(tf.Variable(b, name=f"b{layer}"))

    @property
    def params(self) -> list[tf.Variable]:
        """[W1, b1, W2, b2, …, W_L, b_L]: the order of every gradient list and trace."""
        return [p for pair in zip(self.kernels, self.biases, strict=True) for p in pair]

    def forward(self, x: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """Each layer's input a^(l-1) (a^0 = x) and weighted input z^l = a^(l-1) (W^l)ᵀ + b^l.

        W^l is n_l × n_(l-1): row j holds the weights into unit j (Nielsen's w^l_jk); the
        images of a batch are rows, so z^l = W^l a^(l-1) + b^l for each image. z^L are the logits.
        """
        inputs: list[tf.Tensor] = []
        zs: list[tf.Tensor] = []
        a = x
        for w, b in zip(self.kernels, self.biases, strict=True):
            if zs:
                a = self.activation(zs[-1])  # a^l = σ(z^l)
            inputs.append(a)
            zs.append(tf.matmul(a, w, transpose_b=True) + b)
        return inputs, zs

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return self.forward(x)[1][-1]


def _sigmoid_ce_mean(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """tf.reduce_mean / Keras: the mean over the output units too."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))


def _sigmoid_ce(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Nielsen's: summed over the output units."""
    per_unit = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
    return tf.reduce_mean(tf.reduce_sum(per_unit, axis=1))


def _softmax_ce(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))


LOSSES: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "sigmoid_cross_entropy": _sigmoid_ce,
    "sigmoid_cross_entropy_mean": _sigmoid_ce_mean,
    "softmax_cross_entropy": _softmax_ce,
}


def loss_function(kind: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """C0: mean over the batch of the per-image cost (sigmoid: summed over output units)."""
    return LOSSES[kind]
