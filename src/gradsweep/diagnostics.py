"""Per-hidden-layer diagnostics on the probe set: the factors of the chain rule, made visible.

For hidden layer l (z^l = W^l a^(l-1) + b^l, a^l = σ(z^l)), backpropagation gives
δ^l = σ′(z^l) ⊙ ((W^(l+1))ᵀ δ^(l+1)): each layer down multiplies the gradient by an activation
derivative and a weight matrix. The columns below measure those factors and the ways a layer
stops learning.
"""

from __future__ import annotations

import pandas as pd
import tensorflow as tf

from gradsweep.io import DIAGNOSTICS
from gradsweep.model import DenseNet, loss_function

# act_deriv: mean |σ′(z^l)| over probe images and units
# weight_norm: ‖W^l‖ (Frobenius), the layer's incoming weights
# chain_factor: act_deriv(l) × ‖W^(l+1)‖, what the chain rule multiplies in from l+1 to l
# saturated_frac: fraction of (image, unit) pairs with |z^l| > 2
# dead_frac: fraction of units whose output is 0 for every probe image
# same_sign_frac: fraction of units whose non-zero incoming weight gradients share one sign
# z_p15, z_p50, z_p85: 15th, 50th, 85th percentile over the probe images of unit 0's z^l, the
#   activation's input (after normalisation, if any): Ioffe & Szegedy's Fig. 1 (b, c)
COLUMNS = DIAGNOSTICS
SATURATION_Z = 2.0


def layer_diagnostics(net: DenseNet, loss: str, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """(hidden layers × COLUMNS) for the mean cost over the probe set (x, y)."""
    with tf.GradientTape() as tape:
        zs = net.forward(x).zs
        cost = loss_function(loss)(y, zs[-1])
    kernel_grads = tape.gradient(cost, net.kernels)
    rows = []
    for layer, z in enumerate(zs[:-1]):
        with tf.GradientTape() as inner:
            inner.watch(z)
            a = net.activation(z)
        act_deriv = tf.abs(inner.gradient(a, z))  # σ′(z), element by element
        g = kernel_grads[layer]
        positive, negative = tf.reduce_any(g > 0, axis=1), tf.reduce_any(g < 0, axis=1)  # per unit
        moving = tf.reduce_sum(tf.cast(positive | negative, tf.float32))
        one_sign = tf.reduce_sum(tf.cast(positive != negative, tf.float32))
        mean_deriv = tf.reduce_mean(act_deriv)
        rows.append(
            tf.stack(
                [
                    mean_deriv,
                    tf.norm(net.kernels[layer]),
                    mean_deriv * tf.norm(net.kernels[layer + 1]),
                    tf.reduce_mean(tf.cast(tf.abs(z) > SATURATION_Z, tf.float32)),
                    tf.reduce_mean(tf.cast(tf.reduce_all(a == 0, axis=0), tf.float32)),
                    one_sign / tf.maximum(moving, 1.0),
                    *(percentile(z[:, 0], q) for q in (15.0, 50.0, 85.0)),
                ]
            )
        )
    return tf.stack(rows)


def percentile(values: tf.Tensor, q: float) -> tf.Tensor:
    """The q-th percentile of a vector, interpolated linearly between order statistics
    (NumPy's default method)."""
    ordered = tf.sort(values)
    position = q / 100.0 * tf.cast(tf.size(values) - 1, tf.float32)
    low = tf.floor(position)
    below = tf.gather(ordered, tf.cast(low, tf.int32))
    above = tf.gather(ordered, tf.cast(tf.math.ceil(position), tf.int32))
    return below + (above - below) * (position - low)


def diagnostics_frame(values: tf.Tensor | list) -> pd.DataFrame:
    """One row per hidden layer (1 = first), one column per diagnostic."""
    frame = pd.DataFrame(values, columns=list(COLUMNS), dtype="float64")
    frame.insert(0, "layer", range(1, len(frame) + 1))
    return frame
