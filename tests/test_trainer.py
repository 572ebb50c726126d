"""The compiled epoch against a plain eager loop: same per-step norms, same weights."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gradsweep.model import DenseNet
from gradsweep.optim import make_optimizer
from gradsweep.train import SGD, Trainer, epoch_batches, plain_sgd_norms, squared_norm


@pytest.mark.parametrize("shape", [(784, 100), (100, 10), (1, 7), (100,), (10,)])
def test_squared_norm_is_the_squared_frobenius_norm(shape):
    g = np.random.default_rng(0).normal(0, 3, size=shape).astype(np.float32)
    compiled = tf.function(squared_norm, jit_compile=True)
    expected = np.sum(g.astype(np.float64) ** 2)
    assert float(compiled(tf.constant(g))) == pytest.approx(expected, rel=1e-5)
    assert float(squared_norm(tf.constant(g))) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("batch", [4, 32])  # outer products written out, the matrix product
@pytest.mark.parametrize(
    ("activation", "loss"),
    [
        ("sigmoid", "sigmoid_cross_entropy"),
        ("sigmoid", "sigmoid_cross_entropy_mean"),
        ("relu", "softmax_cross_entropy"),
        ("tanh", "softmax_cross_entropy"),
        ("elu", "sigmoid_cross_entropy"),
        ("softsign", "softmax_cross_entropy"),
    ],
)
def test_backpropagation_equals_automatic_differentiation(activation, loss, batch):
    """BP3 and BP4 written out give the gradients TensorFlow's tape finds for every parameter."""
    x, y = data(n=batch, features=7)
    net = DenseNet([7, 6, 5, 10], activation, "glorot_normal", seed=3)
    trainer = Trainer(net, loss, SGD(0.1, batch))
    with tf.GradientTape() as tape:
        cost = trainer.loss(y, net(x))
    expected = tape.gradient(cost, net.params)
    compiled = tf.function(trainer.gradients, jit_compile=True)
    for got in (trainer.gradients(x, y), compiled(x, y)):
        for g, e, p in zip(got, expected, net.params, strict=True):
            assert g.shape == p.shape
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("activation", "loss", "normalization"),
    [
        ("sigmoid", "sigmoid_cross_entropy", "none"),
        ("tanh", "softmax_cross_entropy", "none"),
        ("relu", "sigmoid_cross_entropy_mean", "none"),
        ("tanh", "softmax_cross_entropy", "layer_norm"),
    ],
)
def test_probe_per_image_error_rms_equals_single_image_bias_gradients(
    activation, loss, normalization
):
    """Trainer.probe's per-hidden-layer RMS over the images of ‖∂C_x/∂z^l‖ equals the RMS of
    the bias (layer norm: β) gradients of each image's own cost, from a tape over that image
    alone; its parameter norms are those of the mean cost's gradient."""
    x, y = data(n=13, features=7)
    net = DenseNet([7, 6, 5, 4, 10], activation, "scaled_normal", seed=1,
                   normalization=normalization)  # fmt: skip
    trainer = Trainer(net, loss, SGD(0.1, 13))
    norms, per_image = (t.numpy() for t in trainer.probe(x, y))
    squares = np.zeros(3)
    for i in range(13):
        with tf.GradientTape() as tape:
            cost = trainer.loss(y[i : i + 1], net(x[i : i + 1]))
        grads = tape.gradient(cost, net.biases[:-1])
        squares += [np.sum(g.numpy().astype(np.float64) ** 2) for g in grads]
    np.testing.assert_allclose(per_image, np.sqrt(squares / 13), rtol=1e-5)
    with tf.GradientTape() as tape:
        cost = trainer.loss(y, net(x))
    mean = [np.linalg.norm(g.numpy()) for g in tape.gradient(cost, net.params)]
    np.testing.assert_allclose(norms, mean, rtol=1e-5)
    # the mean of 13 errors is shorter than their RMS (they point different ways)
    bias = norms[[i for i, (_, name) in enumerate(net.param_names) if name == "bias"][:3]]
    assert (bias < per_image).all()


@pytest.mark.parametrize(
    ("normalization", "residual"), [("none", False), ("batch_norm", True), ("layer_norm", False)]
)
def test_inner_products_and_closed_form_norms_equal_numpy(normalization, residual):
    """⟨∂C0/∂θ, θ⟩ without reading W (from the errors and the forward pass) equals NumPy's
    Σ g θ over the gradients and parameters; from it, plain SGD's ‖Δθ‖ and ‖θ + Δθ‖ in closed
    form equal NumPy's norms of −η (g + d θ) and θ − η (g + d θ)."""
    x, y = data(n=6, features=7)
    net = DenseNet([7, 6, 6, 10], "tanh", "glorot_normal", seed=2, normalization=normalization,
                   residual=residual)  # fmt: skip
    trainer = Trainer(net, "softmax_cross_entropy", SGD(0.3, 6, l2=4.0, l2_n=50))
    grads, _, inners = trainer.backpropagate(x, y, inner=True)
    gs = [g.numpy().astype(np.float64) for g in grads]
    ps = [p.numpy().astype(np.float64) for p in net.params]
    want = [np.sum(g * p) for g, p in zip(gs, ps, strict=True)]
    np.testing.assert_allclose([float(i) for i in inners], want, rtol=1e-4, atol=1e-6)

    g_sq = tf.constant([np.sum(g**2) for g in gs], tf.float32)
    p_sq = tf.constant([np.sum(p**2) for p in ps], tf.float32)
    moved, after = plain_sgd_norms(0.3, trainer.decays, g_sq, tf.stack(inners), p_sq)
    steps = [-0.3 * (g + d * p) for g, p, d in zip(gs, ps, trainer.decays, strict=True)]
    assert sum(d > 0 for d in trainer.decays) == 3  # weight decay on the three W only
    np.testing.assert_allclose(np.sqrt(moved), [np.linalg.norm(s) for s in steps], rtol=1e-4)
    np.testing.assert_allclose(
        np.sqrt(after), [np.linalg.norm(p + s) for p, s in zip(ps, steps, strict=True)], rtol=1e-4
    )


def test_optimizer_state_is_what_a_checkpoint_holds_and_reset_clears_it():
    params = [tf.Variable(tf.ones((2, 3))), tf.Variable(tf.ones(2))]
    assert make_optimizer("sgd", params, 0.1).state == []
    adam = make_optimizer("adam", params, 0.1)
    adam.updates([tf.ones((2, 3)), tf.ones(2)])
    assert [v.shape for v in adam.state] == [(), (2, 3), (2,), (2, 3), (2,)]  # t, m, v
    assert int(adam.iterations) == 1 and all(np.any(v.numpy()) for v in adam.state[1:])
    adam.reset()
    assert not any(np.any(v.numpy()) for v in adam.state)
    # decay slots (m_d) for the parameters with weight decay only, apart from ``state``
    decaying = make_optimizer("adam", params, 0.1, decays=[0.5, 0.0])
    assert [v.shape for v in decaying.decay_state] == [(2, 3)] and len(decaying.state) == 5
    decaying.updates([tf.ones((2, 3)), tf.ones(2)])
    decaying.decay_updates([0.5 * params[0], None])
    assert np.any(decaying.decay_state[0].numpy())
    decaying.reset()
    assert not np.any(decaying.decay_state[0].numpy())
    assert make_optimizer("sgd", params, 0.1, decays=[0.5, 0.0]).decay_state == []
    with pytest.raises(ValueError, match="optimizer = 'rmsprop'; allowed: sgd, momentum, adam"):
        make_optimizer("rmsprop", params, 0.1)


def numpy_steps(optimizer, nesterov, lr, decays, start, grad_at, batches):
    """The reference for the split of every Δθ: the step rule written in NumPy (float64),
    stepped on ∂C0/∂θ from TensorFlow's tape at each θ (``grad_at``), with the weight decay's
    part of each Δθ by its definition (``gradsweep.optim``): −η d θ for SGD; momentum's
    second velocity v_d ← μ v_d − η d θ; Adam's m_d ← β₁ m_d + (1 − β₁) d θ over the full
    √v + ε. Returns per step (‖Δθ_d‖, ‖Δθ − Δθ_d‖) per tensor, the epoch's decay part D
    (momentum, Adam: Σ Δθ_d over the steps; SGD: where the decay steps s ← s − η d s alone
    take θ_0, less θ_0), Σ Δθ_d, and θ at the end."""
    mu, b1, b2, eps = 0.9, 0.9, 0.999, 1e-7
    theta_0 = [p.astype(np.float64) for p in start]
    theta = [p.copy() for p in theta_0]
    zeros = [np.zeros_like(p) for p in theta]
    v, vd, m, s, md, total, learned = ([z.copy() for z in zeros] for _ in range(7))
    shrunk = [p.copy() for p in theta]
    rows = []
    for t, batch in enumerate(batches, start=1):
        gs = grad_at(theta, batch)
        row = []
        for i, (g, d) in enumerate(zip(gs, decays, strict=True)):
            term = d * theta[i]
            full = g + term
            if optimizer == "sgd":
                step, part = -lr * full, -lr * term
                shrunk[i] = shrunk[i] - lr * d * shrunk[i]  # the L2 shrink alone
                learned[i] = learned[i] - lr * (d * learned[i] + g)  # the gradient's steps
            elif optimizer == "momentum":
                v[i] = mu * v[i] - lr * full
                vd[i] = mu * vd[i] - lr * term
                step = mu * v[i] - lr * full if nesterov else v[i]
                part = mu * vd[i] - lr * term if nesterov else vd[i]
            else:
                m[i] = b1 * m[i] + (1 - b1) * full
                s[i] = b2 * s[i] + (1 - b2) * full**2
                md[i] = b1 * md[i] + (1 - b1) * term
                alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
                step = -alpha * m[i] / (np.sqrt(s[i]) + eps)
                part = -alpha * md[i] / (np.sqrt(s[i]) + eps)
            theta[i] = theta[i] + step
            total[i] += part
            row.append((np.linalg.norm(part), np.linalg.norm(step - part)))
        rows.append(row)
    epoch = total
    if optimizer == "sgd":  # θ_T = s_T + r_T: the shrink alone and the gradient's steps
        for a, b, c in zip(shrunk, learned, theta, strict=True):
            np.testing.assert_allclose(a + b, c, rtol=1e-12, atol=1e-15)
        epoch = [a - b for a, b in zip(shrunk, theta_0, strict=True)]
    return np.array(rows), epoch, total, theta  # rows: (steps, tensors, 2)


@pytest.mark.parametrize(
    ("optimizer", "nesterov", "every", "lr"),
    [
        ("sgd", False, 1, 0.3),  # closed form from ‖θ‖² and ‖∂C0/∂θ‖²
        ("sgd", False, 3, 0.3),  # closed form, ‖θ‖² recomputed after untraced steps
        ("momentum", False, 1, 0.1),
        ("momentum", True, 2, 0.1),
        ("adam", False, 1, 0.01),
    ],
)
def test_decay_part_of_each_update_equals_numpy(optimizer, nesterov, every, lr):
    """Each traced step's ‖weight-decay part of Δθ‖ and ‖the rest‖ (``decay``, ``grad_step``)
    and the epoch's (``Trainer.epoch_decay_parts``, the probe rows' split) equal a NumPy step
    rule fed TensorFlow's ∂C0/∂θ: on kernels only (biases: 0 and ‖Δθ‖). Momentum's and Adam's
    decay part carries the past steps' decay; with this much decay it differs from this step's
    −η d θ by far more than the tolerance, so a rule that forgot its history would fail. Plain
    SGD's epoch part is the L2 shrink alone, stepped in NumPy: not the sum of the steps'
    −η d θ (9–21 % apart here), with T the steps taken, not the rows traced."""
    n, batch = 60, 6
    x, y = data(n=n, features=7)
    batches = epoch_batches(n, batch, seed=1, epoch=1)
    sgd = SGD(lr, batch, l2=40.0, l2_n=n, trace_every=every, optimizer=optimizer,
              nesterov=nesterov)  # fmt: skip
    net, ref = (DenseNet([7, 6, 6, 10], "tanh", "glorot_normal", seed=2) for _ in range(2))
    trainer = Trainer(net, "softmax_cross_entropy", sgd)
    start = [p.numpy() for p in net.params]
    ours = trainer.train_epoch(x, y, tf.constant(batches))

    def grad_at(theta, rows):
        for variable, value in zip(ref.params, theta, strict=True):
            variable.assign(value.astype(np.float32))
        xb, yb = tf.gather(x, rows), tf.gather(y, rows)
        with tf.GradientTape() as tape:
            cost = trainer.loss(yb, ref(xb))
        return [g.numpy().astype(np.float64) for g in tape.gradient(cost, ref.params)]

    want, total, summed, end = numpy_steps(optimizer, nesterov, lr, trainer.decays, start,
                                           grad_at, batches)  # fmt: skip
    want = want[::every]
    tol = {"rtol": 2e-4, "atol": 1e-7}
    # plain SGD does not record the gradient's part: it is η ‖∂C0/∂θ‖ (docs/outputs.md)
    assert ("grad_step" in ours) == (optimizer != "sgd")
    grad_step = ours["grad_step"].numpy() if "grad_step" in ours else lr * ours["grad"].numpy()
    np.testing.assert_allclose(ours["decay"].numpy(), want[..., 0], **tol)
    np.testing.assert_allclose(grad_step, want[..., 1], **tol)
    kernels = np.array(trainer.decays) > 0
    assert (ours["decay"].numpy()[:, kernels] > 1e-3).all()
    assert not ours["decay"].numpy()[:, ~kernels].any()
    np.testing.assert_allclose(
        grad_step[:, ~kernels], ours["update"].numpy()[:, ~kernels], rtol=1e-6
    )
    # the epoch: momentum and Adam sum their steps' parts, plain SGD needs no sum
    assert int(ours["steps"]) == len(batches)
    for got, d in zip(trainer.epoch_decay, trainer.decays, strict=True):
        assert (got is None) == (d == 0 or optimizer == "sgd")
    parts = trainer.epoch_decay_parts(start, int(ours["steps"]))
    triples = zip(parts, total, trainer.decays, strict=True)
    for i, (got, expected, d) in enumerate(triples):
        assert (got is None) == (d == 0)
        if got is not None:
            np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-7)
            rest = net.params[i].numpy() - start[i] - got  # the gradient's part
            np.testing.assert_allclose(rest, end[i] - start[i] - expected, rtol=2e-4, atol=1e-6)
    if optimizer == "sgd":  # not the sum of the steps' −η d θ, nor T = the traced rows
        for got, other, d in zip(parts, summed, trainer.decays, strict=True):
            if d:
                assert not np.allclose(got, other, rtol=0.05)
        if every > 1:
            assert not np.allclose(trainer.epoch_decay_parts(start, len(want))[0], parts[0])
    if optimizer != "sgd":  # the history matters: not this step's −η d θ alone
        last = [lr * d * np.linalg.norm(p.numpy()) for p, d in zip(net.params, trainer.decays,
                                                                    strict=True)]  # fmt: skip
        assert not np.allclose(ours["decay"].numpy()[-1], last, rtol=0.05)


def data(n=200, features=20, seed=1):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.random((n, features), dtype=np.float32)), tf.one_hot(
        rng.integers(0, 10, n), 10
    )


def eager_epoch(trainer, x, y, batches, trace_every):
    """The reference: one Python-level step at a time, norms by ``tf.norm``."""
    norms = []
    for step, batch in enumerate(batches):
        grads, _ = trainer.sgd_step(tf.gather(x, batch), tf.gather(y, batch))
        if step % trace_every == 0:
            norms.append([float(tf.norm(g)) for g in grads])
            if not np.isfinite(norms[-1]).all():
                break
    return np.array(norms)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_seed_setting_epoch_equals_eager_loop(jit_compile):
    """Sigmoid layers, sigmoid cross-entropy, batch 10, L2: the seed's SGD, every step traced."""
    x, y = data()
    batches = epoch_batches(200, 10, seed=3, epoch=2)
    sgd = SGD(0.5, 10, l2=5.0, l2_n=200, trace_every=1, jit_compile=jit_compile)
    fast_net, slow_net = (
        DenseNet([20, 16, 16, 16, 10], "sigmoid", "scaled_normal", seed=5) for _ in range(2)
    )
    epoch = Trainer(fast_net, "sigmoid_cross_entropy", sgd).train_epoch(x, y, tf.constant(batches))
    norms = epoch["grad"]
    expected = eager_epoch(Trainer(slow_net, "sigmoid_cross_entropy", sgd), x, y, batches, 1)
    assert norms.shape == (20, 8)
    np.testing.assert_allclose(norms.numpy(), expected, rtol=1e-4, atol=1e-7)
    for a, b in zip(fast_net.params, slow_net.params, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_untraced_epoch_trains_the_same_weights():
    x, y = data()
    batches = tf.constant(epoch_batches(200, 10, seed=0, epoch=1))
    nets = [DenseNet([20, 12, 10], "relu", "he_normal", seed=2) for _ in range(2)]
    traced, untraced = (
        Trainer(net, "softmax_cross_entropy", SGD(0.1, 10, trace_every=every))
        for net, every in zip(nets, (1, 0), strict=True)
    )
    assert traced.train_epoch(x, y, batches)["grad"].shape == (20, 4)
    assert untraced.train_epoch(x, y, batches)["grad"].shape == (0, 4)
    for a, b in zip(*(net.params for net in nets), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def test_epoch_stops_at_the_first_non_finite_gradient():
    x, y = data(features=12, seed=2)
    batches = epoch_batches(200, 10, seed=0, epoch=1)
    sgd = SGD(1e8, 10)  # explodes within a few steps
    fast_net, slow_net = (
        DenseNet([12, 9, 9, 10], "relu", "normal", weight_scale=10.0, seed=4) for _ in range(2)
    )
    epoch = Trainer(fast_net, "softmax_cross_entropy", sgd).train_epoch(x, y, tf.constant(batches))
    norms = epoch["grad"].numpy()
    expected = eager_epoch(Trainer(slow_net, "softmax_cross_entropy", sgd), x, y, batches, 1)
    bad = len(expected) - 1
    assert 0 < bad < len(batches) - 1 and not np.isfinite(expected[bad]).all()
    assert int(epoch["steps"]) == bad + 1  # the steps taken: T of the probe rows' split
    # every 3rd step traced, an image of Inf in step 6: the epoch ends with that step's block
    poisoned = x.numpy()
    poisoned[batches[6][0]] = np.inf
    net = DenseNet([12, 9, 9, 10], "relu", "normal", seed=4)
    sparse = Trainer(net, "softmax_cross_entropy", SGD(0.1, 10, trace_every=3)).train_epoch(
        tf.constant(poisoned), y, tf.constant(batches)
    )
    finite = np.isfinite(sparse["grad"].numpy()).all(axis=1)
    assert finite[:2].all() and not finite[2] and int(sparse["steps"]) == 9
    np.testing.assert_allclose(norms[:bad], expected[:bad], rtol=1e-4)
    assert not np.isfinite(norms[bad]).all()
    assert not norms[bad + 1 :].any()  # never computed
    for a, b in zip(fast_net.params, slow_net.params, strict=True):  # no update after the bad one
        np.testing.assert_array_equal(np.isfinite(a.numpy()), np.isfinite(b.numpy()))


def test_thread_pools_never_exceed_the_cpus_this_process_may_use():
    """A job asking for 64 threads gets min(64, its CPUs): on a 2-core machine 2 (``snakemake
    --cores 8`` there), on a 128-core one 64."""
    code = (
        "import os\n"
        "from gradsweep.train import configure_threads\n"
        "import tensorflow as tf\n"
        "configure_threads(64)\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads(), len(os.sched_getaffinity(0)))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    intra, inter, cpus = map(int, out.stdout.split())
    assert intra == inter == min(64, cpus)
