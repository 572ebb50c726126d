import numpy as np
import pytest
import tensorflow as tf

from gradsweep.model import ACTIVATIONS, INITIALIZERS, DenseNet
from gradsweep.train import SGD, Trainer, epoch_batches


@pytest.mark.parametrize(
    ("init", "std"),
    [
        ("normal", lambda n: 1.0),
        ("scaled_normal", lambda n: 1 / np.sqrt(n)),
        ("scaled_normal_relu", lambda n: np.sqrt(2 / n)),
        ("standard_uniform", lambda n: 1 / np.sqrt(3 * n)),
        ("he_normal", lambda n: np.sqrt(2 / n)),
        ("lecun_normal", lambda n: 1 / np.sqrt(n)),
    ],
)
def test_init_std_follows_fan_in(init, std):
    fan_in = 400
    w = DenseNet([fan_in, 300, 10], "sigmoid", init, seed=1).kernels[0].numpy()
    assert w.shape == (300, fan_in)  # Nielsen's w^l_jk: row j holds the weights into unit j
    assert w.std() == pytest.approx(std(fan_in), rel=0.03)
    assert abs(w.mean()) < 0.05 * std(fan_in) + 1e-3


def test_every_advertised_activation_and_init_builds():
    for activation in ACTIVATIONS:
        for init in INITIALIZERS:
            net = DenseNet([4, 3, 2], activation, init, bias_init="zeros", seed=0)
            assert net(tf.ones((1, 4))).shape == (1, 2)


def test_weight_scale_and_bias_init():
    a = DenseNet([50, 40, 10], "relu", "normal", bias_init="zeros", weight_scale=10, seed=3)
    b = DenseNet([50, 40, 10], "relu", "normal", bias_init="normal", seed=3)
    np.testing.assert_allclose(a.kernels[0].numpy(), 10 * b.kernels[0].numpy(), rtol=1e-6)
    assert not a.biases[0].numpy().any() and b.biases[0].numpy().std() > 0.5


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_backprop(ws, bs, x, y):
    """Nielsen's backprop for sigmoid layers, sigmoid outputs and cross-entropy (mean)."""
    activations, zs = [x], []
    for w, b in zip(ws, bs, strict=True):  # w: n_l × n_(l-1); images are rows
        zs.append(activations[-1] @ w.T + b)
        activations.append(sigmoid(zs[-1]))
    delta = (activations[-1] - y) / len(x)  # output layer: ∂C/∂z^L for cross-entropy
    grads = []
    for layer in range(len(ws) - 1, -1, -1):
        grads[:0] = [delta.T @ activations[layer], delta.sum(axis=0)]
        if layer:
            s = sigmoid(zs[layer - 1])
            delta = (delta @ ws[layer]) * s * (1 - s)  # the chain rule, one layer down
    return grads


def test_gradient_norms_and_sgd_step_match_numpy_backprop():
    net = DenseNet([6, 5, 4, 3], "sigmoid", "scaled_normal", seed=7)
    rng = np.random.default_rng(0)
    x = rng.random((8, 6), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    ws = [k.numpy().astype(np.float64) for k in net.kernels]
    bs = [b.numpy().astype(np.float64) for b in net.biases]
    expected = numpy_backprop(ws, bs, x.astype(np.float64), y)

    sgd = SGD(learning_rate=0.3, batch_size=8, l2=2.0, l2_n=100, jit_compile=True)
    trainer = Trainer(net, "sigmoid_cross_entropy", sgd)
    probe = trainer.probe(tf.constant(x), tf.constant(y))[0].numpy()
    np.testing.assert_allclose(probe, [np.linalg.norm(g) for g in expected], rtol=1e-4)

    steps = trainer.train_epoch(tf.constant(x), tf.constant(y), tf.constant([np.arange(8)]))
    np.testing.assert_allclose(steps["grad"].numpy()[0], probe, rtol=1e-5)
    # the step's ‖Δθ‖ = η ‖g + (λ/n) w‖ (weights) or η ‖g‖ (biases), and ‖θ‖ after it
    before = [p for pair in zip(ws, bs, strict=True) for p in pair]
    moves = [
        0.3 * (g + (2.0 / 100 * p if i % 2 == 0 else 0))
        for i, (g, p) in enumerate(zip(expected, before, strict=True))
    ]
    np.testing.assert_allclose(
        steps["update"].numpy()[0], [np.linalg.norm(m) for m in moves], rtol=1e-4
    )
    after = [b - m for b, m in zip(before, moves, strict=True)]
    np.testing.assert_allclose(
        steps["param"].numpy()[0], [np.linalg.norm(p) for p in after], rtol=1e-4
    )
    for i, (w, g) in enumerate(zip(ws, expected[::2], strict=True)):
        np.testing.assert_allclose(
            net.kernels[i].numpy(), w - 0.3 * (g + 2.0 / 100 * w), rtol=1e-4, atol=1e-6
        )
    for i, (b, g) in enumerate(zip(bs, expected[1::2], strict=True)):
        np.testing.assert_allclose(net.biases[i].numpy(), b - 0.3 * g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("trace_every", [1, 3])
def test_compiled_epoch_equals_step_by_step_loop(trace_every):
    """The XLA epoch gives the same per-step norms and final weights as a plain eager loop."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.random((200, 12), dtype=np.float32))
    y = tf.one_hot(rng.integers(0, 10, 200), 10)
    batches = epoch_batches(200, 10, seed=0, epoch=1)
    sgd = SGD(0.5, 10, l2=5.0, l2_n=200, trace_every=trace_every)
    fast_net, slow_net = (
        DenseNet([12, 9, 9, 10], "tanh", "glorot_normal", seed=4) for _ in range(2)
    )
    fast = Trainer(fast_net, "softmax_cross_entropy", sgd)
    norms = fast.train_epoch(x, y, tf.constant(batches))["grad"].numpy()

    slow = Trainer(slow_net, "softmax_cross_entropy", sgd)
    expected = []
    for step, batch in enumerate(batches):
        grads, _ = slow.sgd_step(tf.gather(x, batch), tf.gather(y, batch))
        if step % trace_every == 0:
            expected.append([float(tf.norm(g)) for g in grads])
    np.testing.assert_allclose(norms, expected, rtol=1e-4, atol=1e-7)
    for a, b in zip(fast_net.params, slow_net.params, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
