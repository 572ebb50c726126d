"""Dense nets as plain ``tf.Variable`` lists, so every layer's weights and gradients are in view.

Implements the activations, inits, bias inits and losses that ``gradsweep.registry`` names
(tests/test_registry.py checks that these tables hold exactly the registry's names).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise
from typing import NamedTuple

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
    # Keras' Orthogonal (gain 1): a (fan_in, fan_out) kernel with orthonormal columns, or rows
    # when fan_in < fan_out; Pennington et al.'s init for dynamical isometry.
    "orthogonal": lambda seed: keras.initializers.Orthogonal(gain=1.0, seed=seed),
}


def weight_initializer(
    init: str, seed: int, weight_variance: float | None = None
) -> keras.initializers.Initializer:
    """The kernel initializer of ``init``; with ``weight_variance`` σ_w² (registry's
    WEIGHT_VARIANCE_INITS): N(0, σ_w²/fan_in) for scaled_normal, gain √σ_w² for orthogonal."""
    if weight_variance is None:
        return INITIALIZERS[init](seed)
    if init == "scaled_normal":
        return _VS(weight_variance, "fan_in", "untruncated_normal", seed=seed)
    if init == "orthogonal":
        return keras.initializers.Orthogonal(gain=math.sqrt(weight_variance), seed=seed)
    raise ValueError(f"weight_variance sets scaled_normal's or orthogonal's σ_w², not {init}'s")


def bias_initializer(
    bias_init: str, seed: int, bias_variance: float | None = None
) -> keras.initializers.Initializer:
    """The bias initializer of ``bias_init``; with ``bias_variance`` σ_b²: N(0, σ_b²) (zeros
    for 0), in place of the normal bias init's N(0, 1)."""
    if bias_variance is None:
        return BIAS_INITIALIZERS[bias_init](seed)
    if bias_init != "normal":
        raise ValueError(f"bias_variance sets the normal bias init's σ_b², not {bias_init}'s")
    if bias_variance == 0:
        return keras.initializers.Zeros()
    return keras.initializers.RandomNormal(0.0, math.sqrt(bias_variance), seed=seed)


BIAS_INITIALIZERS: dict[str, Callable[[int], keras.initializers.Initializer]] = {
    "normal": lambda seed: keras.initializers.RandomNormal(0.0, 1.0, seed=seed),
    "zeros": lambda seed: keras.initializers.Zeros(),
}


NORMALIZATIONS = ("none", "batch_norm", "layer_norm")
# Keras' defaults (BatchNormalization: momentum 0.99, epsilon 1e-3; LayerNormalization: 1e-3)
BN_MOMENTUM = 0.99
NORM_EPSILON = 1e-3


class Pass(NamedTuple):
    """One forward pass, layer l = 1 … L (index l − 1):

    - ``inputs``: a^(l−1), the layer's input (a^0 = x);
    - ``us``: u^l = W^l a^(l−1) (+ b^l without normalization), the weighted input;
    - ``zs``: z^l, the activation's input: u^l itself, or γ^l û^l + β^l with û^l the
      normalised u^l; z^L are the logits;
    - ``moments``: per normalised hidden layer, the batch mean and variance of u^l (batch
      norm in training mode only; its moving statistics follow them).
    """

    inputs: list[tf.Tensor]
    us: list[tf.Tensor]
    zs: list[tf.Tensor]
    moments: list[tuple[tf.Tensor, tf.Tensor]]


class DenseNet(tf.Module):
    """``sizes = [784, 100, 100, 10]``: input, hidden widths, output; layer l = 1 … L.

    ``normalization`` (hidden layers, before the activation): ``batch_norm`` normalises each
    unit's u over the batch (moving statistics for evaluation), ``layer_norm`` over the layer's
    units for each image; either then scales by γ and shifts by β, and β takes the place of the
    bias b (its gradient is Σ δ^l, as b's was). ``residual``: a^l = a^(l−1) + σ(z^l) for every
    hidden layer after the first (equal widths), an identity path around σ′ and W.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str,
        init: str,
        bias_init: str = "normal",
        weight_scale: float = 1.0,
        seed: int = 0,
        normalization: str = "none",
        residual: bool = False,
        weight_variance: float | None = None,
        bias_variance: float | None = None,
    ) -> None:
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.normalization, self.residual = normalization, residual
        hidden = list(sizes[1:-1])
        if residual and len(set(hidden)) > 1:
            raise ValueError(f"residual connections need equal hidden widths; widths = {hidden}")
        self.kernels: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []
        self.scales: list[tf.Variable] = []  # γ of each normalised hidden layer
        self.moving: list[tuple[tf.Variable, tf.Variable]] = []  # batch norm's mean, variance
        n_layers = len(sizes) - 1
        for layer, (fan_in, fan_out) in enumerate(pairwise(sizes), start=1):
            # Keras draws a (fan_in, fan_out) kernel; stored transposed, as Nielsen's w^l_jk
            kernel_init = weight_initializer(init, seed * 1009 + layer, weight_variance)
            w = kernel_init((fan_in, fan_out), dtype="float32")
            w = tf.transpose(w)
            self.kernels.append(tf.Variable(w * weight_scale, name=f"W{layer}"))
            if normalization != "none" and layer < n_layers:
                self.biases.append(tf.Variable(tf.zeros(fan_out), name=f"beta{layer}"))
                self.scales.append(tf.Variable(tf.ones(fan_out), name=f"gamma{layer}"))
                if normalization == "batch_norm":
                    mean = tf.Variable(tf.zeros(fan_out), trainable=False, name=f"mean{layer}")
                    var = tf.Variable(tf.ones(fan_out), trainable=False, name=f"var{layer}")
                    self.moving.append((mean, var))
            else:
                bias = bias_initializer(bias_init, seed * 1013 + layer, bias_variance)
                b = bias((fan_out,))
                self.biases.append(tf.Variable(b, name=f"b{layer}"))

    @property
    def params(self) -> list[tf.Variable]:
        """[W1, b1, (γ1,) W2, b2, (γ2,) …, W_L, b_L]: the order of every gradient list and trace."""
        return [p for layer in self._layer_params() for _, p in layer]

    @property
    def param_names(self) -> list[tuple[int, str]]:
        """(layer, "kernel" | "bias" | "scale") of each of :attr:`params`."""
        return [
            (layer, name)
            for layer, params in enumerate(self._layer_params(), start=1)
            for name, _ in params
        ]

    @property
    def state(self) -> list[tf.Variable]:
        """Variables that are not trained but change in training: batch norm's moving statistics."""
        return [v for pair in self.moving for v in pair]

    def _layer_params(self) -> list[list[tuple[str, tf.Variable]]]:
        layers = [
            [("kernel", w), ("bias", b)] for w, b in zip(self.kernels, self.biases, strict=True)
        ]
        for layer, gamma in zip(layers, self.scales, strict=False):
            layer.append(("scale", gamma))
        return layers

    def forward(self, x: tf.Tensor, training: bool = True) -> Pass:
        """The pass through every layer (see :class:`Pass`).

        W^l is n_l × n_(l−1): row j holds the weights into unit j (Nielsen's w^l_jk); the images
        of a batch are rows, so u^l = W^l a^(l−1) (+ b^l) for each image. Batch norm uses the
        batch's statistics when ``training`` and its moving statistics otherwise.
        """
        inputs: list[tf.Tensor] = []
        us: list[tf.Tensor] = []
        zs: list[tf.Tensor] = []
        moments: list[tuple[tf.Tensor, tf.Tensor]] = []
        a = x
        last = len(self.kernels) - 1
        for layer, (w, b) in enumerate(zip(self.kernels, self.biases, strict=True)):
            if zs:
                a_next = self.activation(zs[-1])  # a^l = σ(z^l)
                a = a + a_next if self.residual and layer > 1 else a_next
            inputs.append(a)
            u = tf.matmul(a, w, transpose_b=True)
            if self.normalization == "none" or layer == last:
                u = z = u + b
            else:
                z = self._normalize(u, layer, training, moments) * self.scales[layer] + b
            us.append(u)
            zs.append(z)
        return Pass(inputs, us, zs, moments)

    def _normalize(self, u: tf.Tensor, layer: int, training: bool, moments: list) -> tf.Tensor:
        """û = (u − μ) / √(σ² + ε): over the batch per unit, or over the units per image."""
        if self.normalization == "layer_norm":
            mean, var = tf.nn.moments(u, axes=[1], keepdims=True)
        elif training:
            mean, var = tf.nn.moments(u, axes=[0])
            moments.append((mean, var))
        else:
            mean, var = self.moving[layer]
        return (u - mean) * tf.math.rsqrt(var + NORM_EPSILON)

    def update_moving_statistics(self, moments: list[tuple[tf.Tensor, tf.Tensor]]) -> None:
        """Batch norm's moving mean and variance ← m · moving + (1 − m) · the batch's (Keras')."""
        for (mean, var), (batch_mean, batch_var) in zip(self.moving, moments, strict=True):
            mean.assign(mean * BN_MOMENTUM + batch_mean * (1.0 - BN_MOMENTUM))
            var.assign(var * BN_MOMENTUM + batch_var * (1.0 - BN_MOMENTUM))

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.forward(x, training).zs[-1]


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
