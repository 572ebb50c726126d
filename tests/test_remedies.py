"""The remedies (issue 15) against independent computations: Keras' own optimizers and
``BatchNormalization``/``LayerNormalization`` layers (and ``Add`` shortcuts) stepped on the same
batches from the same initial weights; NumPy for percentiles; a resumed run against one
trained without a break."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gradsweep import data
from gradsweep.config import expand_runs
from gradsweep.diagnostics import percentile
from gradsweep.model import DenseNet
from gradsweep.train import SGD, Trainer, epoch_batches

SIZES = [12, 9, 9, 9, 10]
N, BATCH, STEPS = 240, 12, 15
LR = {"sgd": 0.3, "momentum": 0.1, "adam": 0.01}


def keras_twin(net: DenseNet, activation: str) -> tuple[keras.Model, list]:
    """The same net built from Keras layers, with ``net``'s initial values; returns the model
    and, in the order of ``net.params``, the Keras variable of each parameter."""
    inputs = keras.Input((SIZES[0],))
    a, pairs, norms = inputs, [], []
    for layer in range(len(SIZES) - 2):
        normalized = net.normalization != "none"
        dense = keras.layers.Dense(SIZES[layer + 1], use_bias=not normalized)
        u = dense(a)
        if normalized:
            kind = {
                "batch_norm": keras.layers.BatchNormalization,
                "layer_norm": keras.layers.LayerNormalization,
            }[net.normalization]
            norm = kind()
            u = norm(u)
            norms.append(norm)
            pairs += [(dense.kernel, True), (norm.beta, False), (norm.gamma, False)]
        else:
            pairs += [(dense.kernel, True), (dense.bias, False)]
        h = keras.layers.Activation(activation)(u)
        a = keras.layers.Add()([a, h]) if net.residual and layer >= 1 else h
    out = keras.layers.Dense(SIZES[-1])
    logits = out(a)
    pairs += [(out.kernel, True), (out.bias, False)]
    for (variable, transposed), ours in zip(pairs, net.params, strict=True):
        variable.assign(tf.transpose(ours) if transposed else ours)
    return keras.Model(inputs, logits), [v for v, _ in pairs], norms


def keras_optimizer(optimizer: str, nesterov: bool) -> keras.optimizers.Optimizer:
    if optimizer == "adam":
        return keras.optimizers.Adam(LR[optimizer])
    momentum = 0.9 if optimizer == "momentum" else 0.0
    return keras.optimizers.SGD(LR[optimizer], momentum=momentum, nesterov=nesterov)


def as_ours(values: list, net: DenseNet) -> list[np.ndarray]:
    """Keras values in our layout (kernels transposed)."""
    return [
        (np.transpose(v) if name == "kernel" else np.asarray(v))
        for v, (_, name) in zip(values, net.param_names, strict=True)
    ]


@pytest.mark.parametrize(
    ("optimizer", "nesterov", "normalization", "residual", "activation", "every"),
    [
        ("sgd", False, "none", False, "sigmoid", 1),  # the seed's step, norms by identities
        ("sgd", False, "none", True, "tanh", 3),
        ("momentum", True, "none", True, "tanh", 1),
        ("sgd", False, "batch_norm", False, "sigmoid", 3),
        ("sgd", False, "layer_norm", True, "relu", 1),
        ("adam", False, "batch_norm", True, "sigmoid", 1),
        ("momentum", False, "layer_norm", False, "sigmoid", 1),
    ],
)
def test_steps_equal_keras_layers_and_optimizers(
    optimizer, nesterov, normalization, residual, activation, every
):
    """``STEPS`` steps of our compiled epoch vs a Keras model of Keras layers trained by a
    Keras optimizer on the same batches (L2 written into its loss): every step's ‖∂C0/∂θ‖,
    ‖Δθ‖ and ‖θ‖, the weights and batch norm's moving statistics after them, and the
    evaluation logits agree within float32 rounding (rtol 2e-4, atol 2e-6)."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(N, SIZES[0])).astype(np.float32))
    y = tf.one_hot(rng.integers(0, 10, N), 10)
    batches = epoch_batches(N, BATCH, seed=1, epoch=1)[:STEPS]
    l2, l2_n = 4.0, N
    net = DenseNet(SIZES, activation, "glorot_normal", seed=3, normalization=normalization,
                   residual=residual)  # fmt: skip
    model, variables, norms = keras_twin(net, activation)
    sgd = SGD(LR[optimizer], BATCH, l2=l2, l2_n=l2_n, optimizer=optimizer, nesterov=nesterov,
              trace_every=every)  # fmt: skip
    trainer = Trainer(net, "softmax_cross_entropy", sgd)
    ours = trainer.train_epoch(x, y, tf.constant(batches))

    opt = keras_optimizer(optimizer, nesterov)
    cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True)
    kernels = [
        v for v, (_, name) in zip(variables, net.param_names, strict=True) if name == "kernel"
    ]
    expected = {"grad": [], "update": [], "param": []}
    for batch in batches:
        xb, yb = tf.gather(x, batch), tf.gather(y, batch)
        before = [v.numpy().copy() for v in variables]
        with tf.GradientTape(persistent=True) as tape:  # one pass: moving statistics once
            cost = cross_entropy(yb, model(xb, training=True))
            penalty = l2 / (2 * l2_n) * tf.add_n([tf.reduce_sum(k**2) for k in kernels])
            total = cost + penalty
        grads = tape.gradient(total, variables)
        pure = tape.gradient(cost, variables)  # ∂C0/∂θ, without the penalty: what is traced
        opt.apply_gradients(zip(grads, variables, strict=True))
        expected["grad"].append([np.linalg.norm(g) for g in pure])
        expected["update"].append(
            [np.linalg.norm(v.numpy() - b) for v, b in zip(variables, before, strict=True)]
        )
        expected["param"].append([np.linalg.norm(v.numpy()) for v in variables])  # after
    for key, values in expected.items():
        want = np.array(values)[::every]  # every ``every``-th step is recorded
        np.testing.assert_allclose(ours[key].numpy(), want, rtol=2e-4, atol=2e-6, err_msg=key)
    for got, want in zip(net.params, as_ours([v.numpy() for v in variables], net), strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=2e-4, atol=2e-6)
    for (mean, var), norm in zip(net.moving, norms, strict=False):  # batch norm only
        np.testing.assert_allclose(mean.numpy(), norm.moving_mean.numpy(), rtol=2e-4, atol=2e-6)
        np.testing.assert_allclose(var.numpy(), norm.moving_variance.numpy(), rtol=2e-4, atol=2e-6)
    # evaluation: batch norm with its moving statistics, on images it was not trained on
    np.testing.assert_allclose(
        net(x, training=False).numpy(), model(x, training=False).numpy(), rtol=2e-4, atol=2e-5
    )


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_percentile_is_numpys(n):
    values = np.random.default_rng(n).normal(size=n).astype(np.float32)
    compiled = tf.function(percentile, jit_compile=True)
    for q in (0.0, 15.0, 50.0, 85.0, 100.0):
        want = np.percentile(values.astype(np.float64), q)
        assert float(compiled(tf.constant(values), q)) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_checkpoint_without_decay_slots_is_not_resumed(tmp_path):
    """A momentum or Adam run with weight decay checkpoints its decay slots; a checkpoint
    written before they existed (params and optimizer state only) is not resumed, as its
    decay parts would be unknown: the run starts again from epoch 0 and the folder goes."""
    from gradsweep import run
    from gradsweep.io import METRICS_SCHEMA, TRACES_SCHEMA

    net = DenseNet([4, 3, 10], "tanh", "glorot_normal", seed=0)
    sgd = SGD(0.1, 2, l2=1.0, l2_n=10, optimizer="momentum")
    trainer = Trainer(net, "softmax_cross_entropy", sgd)
    plain = Trainer(DenseNet([4, 3, 10], "tanh", "glorot_normal", seed=0), "softmax_cross_entropy",
                    SGD(0.1, 2, l2=1.0, l2_n=10))  # fmt: skip
    assert len(trainer.decay_state) == 2 and plain.decay_state == []  # two kernels; SGD: none
    folder = tmp_path / "ckpt"
    ckpt = run._Checkpoint(folder, "key")
    empty = [pd.DataFrame(columns=s.names) for s in (TRACES_SCHEMA, METRICS_SCHEMA)]
    ckpt.save(0, trainer, *empty)
    assert ckpt.last_epoch() == 0 and ckpt.holds(0, trainer) and ckpt.holds(0, plain)
    old = tf.train.Checkpoint(params=net.params, state=trainer.state)
    old.write(str(folder / "weights-00000"))  # as the code before the decay slots wrote it
    assert ckpt.last_epoch() == 0 and not ckpt.holds(0, trainer)
    lines = []
    record = run._resume(ckpt, trainer, "x/y", lines.append)
    assert record.next_epoch == 0 and not lines and not folder.exists()


def test_residual_net_needs_equal_hidden_widths():
    with pytest.raises(ValueError, match=r"widths = \[9, 5\]"):
        DenseNet([12, 9, 5, 10], "sigmoid", "scaled_normal", residual=True)
    DenseNet([12, 9, 10], "sigmoid", "scaled_normal", residual=True)  # one layer: no shortcut


# Trains in a fresh process (TensorFlow's thread pools are set once per process): argv =
# the runs' JSON, the folder. "whole": the second run; "cut": it again, stopped after epoch 2's
# checkpoint, then resumed; "other": the first run; "again": the second after it (reused code).
TRAIN = """
import json, sys
from pathlib import Path
from gradsweep.run import train_run

class Interrupt(Exception):
    pass

def stop(line):
    if " epoch 3/" in line:
        raise Interrupt

first, second = json.loads(sys.argv[1])
root = Path(sys.argv[2])
data = root / "digits.npz"
train_run(second, data, root / "whole", log=lambda _: None)
try:
    train_run(second, data, root / "cut", checkpoint_dir=root / "ckpt", log=stop)
except Interrupt:
    print("stopped at epoch", json.loads((root / "ckpt/state.json").read_text())["epoch"])
train_run(second, data, root / "cut", checkpoint_dir=root / "ckpt", log=print)
train_run(first, data, root / "other", log=lambda _: None)
train_run(second, data, root / "again", log=lambda _: None)
"""


@pytest.mark.slow
def test_adam_batch_norm_run_resumes_and_reuses_compiled_code_exactly(tmp_path):
    """An Adam + batch norm + residual run stopped after epoch 2 resumes from its checkpoint
    (weights, Adam's moments and step count, moving statistics) to the numbers of a run never
    interrupted; a run of that shape trained after another one (compiled code reused, optimizer
    reset) equals it too. Traces hold ‖Δθ‖ and ‖Δθ‖/‖θ‖ per step and per epoch."""
    data.prepare("digits", [], tmp_path / "digits.npz")
    config = {
        "training": {"epochs": 4, "probe_size": 100, "learning_rate": 0.003},
        "experiments": {
            "r": {
                "dataset": "digits",
                "grid": {
                    "depth": [3],
                    "width": [16],
                    "activation": ["sigmoid"],
                    "init": ["scaled_normal"],
                    "seed": [0, 1],
                },  # fmt: skip
            }
        },
    }
    remedy = {"optimizer": "adam", "normalization": "batch_norm", "residual": True}
    runs = [{**cfg, **remedy} for cfg in expand_runs(config)]
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, json.dumps(runs), str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped at epoch 2" in result.stdout
    assert "resumed from the checkpoint after epoch 2" in result.stdout

    def read(name):
        return {
            k: pd.read_parquet(tmp_path / name / f"{k}.parquet").drop(
                columns="wall_s", errors="ignore"
            )
            for k in ("traces", "metrics")
        }

    whole = read("whole")
    for name in ("cut", "again"):
        for k, frame in read(name).items():
            pd.testing.assert_frame_equal(frame, whole[k], check_exact=True)

    traces = whole["traces"]
    steps = traces[traces["source"] == "step"]
    assert set(traces["param"]) == {"kernel", "bias", "scale"}
    assert (steps["update_norm"] > 0).all() and steps["relative_update"].notna().all()
    probe = traces[traces["source"] == "probe"]
    assert probe.loc[probe["epoch"] == 0, "update_norm"].isna().all()
    assert (probe.loc[probe["epoch"] > 0, "update_norm"] > 0).all()
    # the update split (l2 = 5 by default): Adam's decay part through its decay slot m_d,
    # which the checkpoint holds (the resumed run above equals the whole one exactly)
    moved = traces[traces["epoch"] > 0]
    kernel = moved["param"] == "kernel"
    assert (moved.loc[kernel, "decay_norm"] > 0).all()
    assert (moved.loc[~kernel, "decay_norm"] == 0).all()
    parts, whole_step = moved[["decay_norm", "grad_step_norm"]], moved["update_norm"]
    assert (whole_step <= parts.sum(axis=1) * (1 + 1e-5)).all()  # ‖a + b‖ ≤ ‖a‖ + ‖b‖
    assert (whole_step >= (parts["decay_norm"] - parts["grad_step_norm"]).abs() * (1 - 1e-5)).all()
    rest = moved.loc[~kernel]
    np.testing.assert_allclose(rest["grad_step_norm"], rest["update_norm"], rtol=1e-5)
    assert probe.loc[probe["epoch"] == 0, ["decay_norm", "grad_step_norm"]].isna().all().all()
    hidden = probe[(probe["param"] == "bias") & (probe["layer"] < 4)]
    assert hidden[["z_p15", "z_p50", "z_p85"]].notna().all().all()
    assert (hidden["z_p15"] <= hidden["z_p50"]).all() and (hidden["z_p50"] <= hidden["z_p85"]).all()
