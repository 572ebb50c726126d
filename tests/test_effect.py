"""The article's effect on scikit-learn's digits, at initialisation (Nielsen's measurement)."""

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from gradsweep.model import DenseNet
from gradsweep.train import SGD, Trainer


def probe_ratio(activation: str, init: str, seed: int, depth: int = 4) -> float:
    x, y = load_digits(return_X_y=True)
    x, y = tf.constant(x[:1000] / 16, tf.float32), tf.one_hot(y[:1000], 10)
    net = DenseNet([64, *[30] * depth, 10], activation, init, seed=seed)
    norms = Trainer(net, "sigmoid_cross_entropy", SGD(0.1, 10)).probe(x, y)[0].numpy()
    bias = norms[1::2][:-1]  # hidden layers' bias-gradient norms, first to last
    return float(bias[-1] / bias[0])


SEEDS = range(5)


def test_first_sigmoid_layer_learns_far_slower_than_the_last():
    """Nielsen's [784,30,30,30,30,10] gives 0.285 / 0.003 ≈ 95; digits are alike."""
    sigmoid = [probe_ratio("sigmoid", "scaled_normal", seed) for seed in SEEDS]
    relu = [probe_ratio("relu", "he_normal", seed) for seed in SEEDS]
    assert min(sigmoid) > 30
    assert min(sigmoid) > 10 * max(relu)


def test_relu_with_he_init_keeps_layers_within_a_small_factor():
    relu = [probe_ratio("relu", "he_normal", seed) for seed in SEEDS]
    assert 1 / 3 < float(np.median(relu)) < 3
