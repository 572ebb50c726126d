"""The probe-set diagnostics against a NumPy computation on tiny nets."""

import numpy as np
import pytest
import tensorflow as tf

from gradsweep.diagnostics import COLUMNS, diagnostics_frame, layer_diagnostics
from gradsweep.model import DenseNet


def numpy_diagnostics(net: DenseNet, activation: str, x: np.ndarray, y: np.ndarray):
    ws = [k.numpy().astype(np.float64) for k in net.kernels]
    bs = [b.numpy().astype(np.float64) for b in net.biases]
    f = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0)}[activation]
    df = {"sigmoid": lambda z: f(z) * (1 - f(z)), "relu": lambda z: (z > 0).astype(float)}[
        activation
    ]
    acts, zs = [x], []
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        zs.append(acts[-1] @ w.T + b)  # w: n_l × n_(l-1)
        acts.append(f(zs[-1]))
    logits = acts[-1] @ ws[-1].T + bs[-1]
    delta = (1 / (1 + np.exp(-logits)) - y) / len(x)  # sigmoid cross-entropy, batch mean
    kernel_grads = [None] * len(ws)
    for layer in range(len(ws) - 1, -1, -1):
        kernel_grads[layer] = delta.T @ acts[layer]
        if layer:
            delta = (delta @ ws[layer]) * df(zs[layer - 1])
    rows = []
    for layer, z in enumerate(zs):
        g = kernel_grads[layer]
        pos, neg = (g > 0).any(axis=1), (g < 0).any(axis=1)  # per unit: its row
        rows.append(
            [
                np.abs(df(z)).mean(),
                np.linalg.norm(ws[layer]),
                np.abs(df(z)).mean() * np.linalg.norm(ws[layer + 1]),
                (np.abs(z) > 2).mean(),
                (f(z) == 0).all(axis=0).mean(),
                (pos != neg).sum() / max((pos | neg).sum(), 1),
                *np.percentile(z[:, 0], [15, 50, 85]),  # unit 0's input, over the images
            ]
        )
    return np.array(rows)


@pytest.mark.parametrize(("activation", "scale"), [("sigmoid", 3.0), ("relu", 1.0)])
def test_diagnostics_match_numpy(activation, scale):
    rng = np.random.default_rng(5)
    net = DenseNet([7, 6, 5, 3], activation, "scaled_normal", weight_scale=scale, seed=2)
    if activation == "relu":  # push some units into the dead regime
        net.biases[0].assign(np.array([-9, -9, 0, 0, 1, 1], np.float32))
    x = rng.random((40, 7)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]
    got = layer_diagnostics(net, "sigmoid_cross_entropy", tf.constant(x), tf.constant(y)).numpy()
    expected = numpy_diagnostics(net, activation, x.astype(np.float64), y)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    frame = diagnostics_frame(got)
    assert list(frame.columns) == ["layer", *COLUMNS] and list(frame["layer"]) == [1, 2]
    if activation == "relu":
        assert frame.loc[0, "dead_frac"] == pytest.approx(2 / 6)
    else:
        assert frame["saturated_frac"].max() > 0
        assert 0 < frame["act_deriv"].max() <= 0.25
