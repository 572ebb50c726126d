"""Mini-batch SGD whose every step records each layer's gradient norm.

One epoch is one compiled TensorFlow function: batches are gathered from tensors already in
memory, the per-step squared norms go into an in-graph ``TensorArray`` and reach the host once,
when the epoch ends (see ``benchmarks/README.md`` for what each choice costs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from gradsweep.config import available_cpus
from gradsweep.model import DenseNet, loss_function

OPTIMIZERS = ("sgd", "momentum", "adam")
MOMENTUM = 0.9
# Keras' Adam defaults
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7


@dataclass(frozen=True)
class SGD:
    """Mini-batch stochastic training: the step rule and its settings.

    ``optimizer``: ``sgd`` (θ ← θ − η g), ``momentum`` (0.9; ``nesterov`` for Nesterov's
    form) or ``adam`` (Keras' β₁ = 0.9, β₂ = 0.999, ε = 1e-7), each written as Keras writes it.
    g is ∂C0/∂θ plus the L2 penalty's (λ/n) θ for weights, so λ means the same for every rule.
    """

    learning_rate: float
    batch_size: int
    l2: float = 0.0  # lambda; the penalty is lambda / (2 n) * sum of squared weights
    l2_n: int = 1
    trace_every: int = 1  # 0: no step traces
    jit_compile: bool = True
    optimizer: str = "sgd"
    nesterov: bool = False


class Trainer:
    def __init__(self, net: DenseNet, loss: str, sgd: SGD) -> None:
        if sgd.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer = {sgd.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        self.net, self.sgd, self.loss = net, sgd, loss_function(loss)
        weight_decay = sgd.l2 / sgd.l2_n
        # L2 on weights (W), not on biases or normalisation scales
        self.decays = [weight_decay if name == "kernel" else 0.0 for _, name in net.param_names]
        # the optimizer's state: one slot per parameter for momentum, two for Adam (m, v)
        slots = {"sgd": 0, "momentum": 1, "adam": 2}[sgd.optimizer]
        self.slots = [
            [tf.Variable(tf.zeros_like(p), trainable=False) for p in net.params]
            for _ in range(slots)
        ]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.train_epoch = tf.function(self._train_epoch, jit_compile=sgd.jit_compile)
        self.probe = tf.function(self.gradient_norms)
        matrix = tf.TensorSpec([None, None], tf.float32)  # any split, traced once
        self.evaluate = tf.function(self._evaluate, input_signature=[matrix, matrix])

    @property
    def state(self) -> list[tf.Variable]:
        """What a checkpoint must hold besides the parameters to resume exactly."""
        if not self.slots:
            return self.net.state
        return [*self.net.state, self.iterations, *(v for slot in self.slots for v in slot)]

    def reset(self) -> None:
        """A fresh optimizer (the net's variables are set elsewhere): for the next run."""
        self.iterations.assign(0)
        for variable in (v for slot in self.slots for v in slot):
            variable.assign(tf.zeros_like(variable))

    def gradients(self, x: tf.Tensor, y: tf.Tensor) -> list[tf.Tensor]:
        return self.backpropagate(x, y)[0]

    def backpropagate(
        self, x: tf.Tensor, y: tf.Tensor, inner: bool = False
    ) -> tuple[list[tf.Tensor], list, list[tf.Tensor]]:
        """∂C0/∂θ for every parameter tensor θ: backpropagation, i.e. the chain rule.

        The tape carries the error δ^l = ∂C0/∂z^l back from the cost through every layer
        (Nielsen's BP1 and BP2); each layer's gradients follow from its error and its input
        a^(l-1), summed over the batch's images: ∂C0/∂b^l = Σ δ^l (BP3) and
        ∂C0/∂W^l = Σ δ^l (a^(l-1))ᵀ (BP4). With normalisation, z^l = γ û^l + β, so β takes b's
        BP3, W takes BP4 with the error at its own output u^l, and γ gets Σ δ^l ⊙ û^l.
        Also returns batch norm's batch moments, which a training step folds into its moving
        statistics, and (``inner``) ⟨∂C0/∂θ, θ⟩ of every θ: for W^l without touching W, as
        ⟨Σ δ aᵀ, W⟩ = Σ δ · (W a), and W a is the forward pass's u^l less its bias.
        """
        with tf.GradientTape() as tape:
            layers = self.net.forward(x)
            cost = self.loss(y, layers.zs[-1])
        if self.net.normalization == "none":
            deltas = tape.gradient(cost, layers.zs)
            u_deltas, d_scales = deltas, []
        else:
            deltas, u_deltas, d_scales = tape.gradient(
                cost, [layers.zs, layers.us, self.net.scales]
            )
        grads, inners = [], []
        last = len(layers.zs) - 1
        for layer, (delta, u_delta, a) in enumerate(
            zip(deltas, u_deltas, layers.inputs, strict=True)
        ):
            grads += [weight_gradient(u_delta, a), tf.reduce_sum(delta, axis=0)]
            if layer < len(d_scales):
                grads.append(d_scales[layer])
            if inner:
                u, b = layers.us[layer], self.net.biases[layer]
                wa = u - b if self.net.normalization == "none" or layer == last else u
                inners += [
                    tf.reduce_sum(u_delta * wa),
                    tf.reduce_sum(grads[-2 if layer < len(d_scales) else -1] * b),
                ]
                if layer < len(d_scales):
                    inners.append(tf.reduce_sum(d_scales[layer] * self.net.scales[layer]))
        return grads, layers.moments, inners

    def gradient_norms(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """‖∂C0/∂θ‖ per parameter tensor θ, for the mean cost over (x, y)."""
        return tf.stack([tf.norm(g) for g in self.gradients(x, y)])

    def sgd_step(self, x: tf.Tensor, y: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """One step θ ← θ + Δθ for every parameter; returns the gradients and the Δθ applied."""
        grads, moments, _ = self.backpropagate(x, y)
        self.net.update_moving_statistics(moments)
        updates = self.updates(grads)
        for p, delta in zip(self.net.params, updates, strict=True):
            p.assign_add(delta)
        return grads, updates

    def plain_sgd_step(self, x: tf.Tensor, y: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor]:
        """θ ← θ − η (∂C0/∂θ + (λ/n) θ) for every layer, weight decay on W only: the seed's
        step as one fused update per tensor. Returns the gradients and ⟨∂C0/∂θ, θ⟩ before it,
        from which :meth:`_traced_norms` gets ‖Δθ‖ and ‖θ‖ without reading Δθ or θ again."""
        grads, moments, inners = self.backpropagate(x, y, inner=True)
        self.net.update_moving_statistics(moments)
        for p, g, decay in zip(self.net.params, grads, self.decays, strict=True):
            p.assign_sub(self.sgd.learning_rate * (g + decay * p))
        return grads, tf.stack(inners)

    def _traced_norms(self, g_sq: tf.Tensor, inner: tf.Tensor, p_sq: tf.Tensor) -> tuple:
        """Plain SGD's ‖Δθ‖² and ‖θ − Δθ‖² from ‖g‖², ⟨g, θ⟩ and ‖θ‖² (all before the step):
        with g' = g + d θ and Δθ = −η g',
        ‖Δθ‖² = η² (‖g‖² + 2 d ⟨g, θ⟩ + d² ‖θ‖²), ‖θ + Δθ‖² = ‖θ‖² − 2 η ⟨θ, g'⟩ + ‖Δθ‖²."""
        eta, d = self.sgd.learning_rate, tf.constant(self.decays, tf.float32)
        moved = eta**2 * (g_sq + 2.0 * d * inner + d**2 * p_sq)
        after = p_sq - 2.0 * eta * (inner + d * p_sq) + moved
        return moved, tf.maximum(after, 0.0)

    def updates(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """Δθ of each parameter for gradients ``grads``, with weight decay g + (λ/n) θ on W."""
        eta, params = self.sgd.learning_rate, self.net.params
        gs = [
            g + decay * p if decay else g
            for g, p, decay in zip(grads, params, self.decays, strict=True)
        ]
        if self.sgd.optimizer == "sgd":
            return [-eta * g for g in gs]
        if self.sgd.optimizer == "momentum":  # v ← μ v − η g; Δθ = v, or μ v − η g (Nesterov)
            updates = []
            for g, v in zip(gs, self.slots[0], strict=True):
                v.assign(MOMENTUM * v - eta * g)
                updates.append(MOMENTUM * v - eta * g if self.sgd.nesterov else v + 0.0)
            return updates
        # Adam: m ← m + (1 − β₁)(g − m), v ← v + (1 − β₂)(g² − v),
        # Δθ = −η √(1 − β₂^t) / (1 − β₁^t) · m / (√v + ε)
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        alpha = eta * tf.sqrt(1.0 - ADAM_BETA_2**t) / (1.0 - ADAM_BETA_1**t)
        updates = []
        for g, m, v in zip(gs, *self.slots, strict=True):
            m.assign_add((g - m) * (1.0 - ADAM_BETA_1))
            v.assign_add((tf.square(g) - v) * (1.0 - ADAM_BETA_2))
            updates.append(-alpha * m / (tf.sqrt(v) + ADAM_EPSILON))
        return updates

    def _train_epoch(self, x: tf.Tensor, y: tf.Tensor, batches: tf.Tensor) -> dict:
        """Training over ``batches`` (steps × batch_size indices).

        Returns, for every ``trace_every``-th step (rows) and each parameter tensor θ (columns):
        ``grad`` ‖∂C0/∂θ‖, ``update`` ‖Δθ‖ of the step applied, ``param`` ‖θ‖ after it. Each
        recorded step adds its squared norms to an in-graph TensorArray; the square roots are
        taken once, when the epoch ends. The epoch stops after a recorded step whose gradient is
        not finite: the rest would only compute NaNs.
        """
        n_params = len(self.decays)
        steps = tf.shape(batches)[0]
        every = self.sgd.trace_every or steps + 1  # untraced: one block, never recorded
        n_blocks = (steps + every - 1) // every
        squares = tf.TensorArray(tf.float32, size=n_blocks if self.sgd.trace_every else 0)
        block, finite = 0, True
        plain = self.sgd.optimizer == "sgd"
        # plain SGD: ‖θ‖² carried from step to step (exact at each traced block's start when
        # untraced steps come between, else from the epoch's start)
        p_sq = tf.stack([squared_norm(p) for p in self.net.params])
        while block < n_blocks and finite:
            first = block * every
            xb, yb = tf.gather(x, batches[first]), tf.gather(y, batches[first])
            if not self.sgd.trace_every:
                self.sgd_step(xb, yb)
            elif plain:
                if self.sgd.trace_every != 1:
                    p_sq = tf.stack([squared_norm(p) for p in self.net.params])
                grads, inner = self.plain_sgd_step(xb, yb)
                g_sq = tf.stack([squared_norm(g) for g in grads])
                moved, p_sq = self._traced_norms(g_sq, inner, p_sq)
                squared = tf.stack([g_sq, moved, p_sq])  # (3, parameters)
                squares = squares.write(block, squared)
                finite = tf.reduce_all(tf.math.is_finite(g_sq))
            else:
                grads, updates = self.sgd_step(xb, yb)
                squared = tf.stack(
                    [
                        squared_norms([g, d, p])
                        for g, d, p in zip(grads, updates, self.net.params, strict=True)
                    ],
                    axis=1,
                )  # (3, parameters): ‖g‖², ‖Δθ‖², ‖θ‖² (after the step)
                squares = squares.write(block, squared)
                finite = tf.reduce_all(tf.math.is_finite(squared[0]))
            if self.sgd.trace_every != 1:  # with 1 there are none: XLA compiles one step
                step = first + 1
                while step < tf.minimum(first + every, steps):  # the block's untraced steps
                    self.sgd_step(tf.gather(x, batches[step]), tf.gather(y, batches[step]))
                    step += 1
            block += 1
        if not self.sgd.trace_every:
            empty = tf.zeros((0, n_params))
            return {"grad": empty, "update": empty, "param": empty}
        norms = tf.sqrt(squares.stack())  # (rows, 3, n_params)
        return {"grad": norms[:, 0], "update": norms[:, 1], "param": norms[:, 2]}

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Summed cost and number of correct predictions over (x, y)."""
        logits = self.net(x, training=False)
        n = tf.cast(tf.shape(x)[0], tf.float32)
        correct = tf.reduce_sum(
            tf.cast(tf.argmax(logits, axis=1) == tf.argmax(y, axis=1), tf.float32)
        )
        return self.loss(y, logits) * n, correct

    def accuracy_and_loss(self, x: tf.Tensor, y: tf.Tensor, chunk: int = 10_000) -> tuple:
        total_loss = total_correct = 0.0
        for start in range(0, int(x.shape[0]), chunk):
            loss, correct = self.evaluate(x[start : start + chunk], y[start : start + chunk])
            total_loss += float(loss)
            total_correct += float(correct)
        n = int(x.shape[0])
        return total_loss / n, total_correct / n


def weight_gradient(delta: tf.Tensor, a: tf.Tensor) -> tf.Tensor:
    """BP4 for a batch: Σ over its images of the outer product δ aᵀ, shaped like W (n_l × n_(l-1)).

    That sum is the matrix product δᵀa. XLA:CPU hands a product to Eigen, whose fixed cost per
    call (~4 µs) is most of the work for a small W and a batch of 10; a few outer products
    written out are fused into one pass instead, ~1.5× faster for the article's 100 × 100 layers.
    A large W is the other way round (XLA then recomputes δ for every weight it fuses in), and
    so is a batch of more than ~12 images (10–45× slower at 64): both stay with the product.
    """
    few_images = delta.shape[0] is not None and delta.shape[0] <= 10
    if few_images and delta.shape[1] * a.shape[1] <= 16_384:
        return tf.reduce_sum(delta[:, :, None] * a[:, None, :], axis=0)
    return tf.matmul(delta, a, transpose_a=True)


def squared_norm(g: tf.Tensor) -> tf.Tensor:
    """‖g‖² = Σ g², summed by two products with vectors of ones: each row, then the row sums.

    Written so for XLA:CPU, which compiles ``tf.reduce_sum(tf.square(g))`` of a 100 × 784
    gradient to a windowed scalar loop of ~100 µs (most of an SGD step) and splits every sum
    over more than 32 numbers into two kernels; the products become one vectorised row sum
    and one short loop. All ten norms of the 784-100-100-100-100-10 net then cost ~10 µs.
    """
    rows = tf.reshape(tf.square(g), [-1, g.shape[-1]])  # a bias vector is one row
    row_sums = rows @ tf.ones((rows.shape[1], 1))
    return (tf.ones((1, rows.shape[0])) @ row_sums)[0, 0]


def squared_norms(tensors: list[tf.Tensor]) -> tf.Tensor:
    """[‖t‖² for t in tensors] of tensors of one shape, as :func:`squared_norm` computes
    them but in one product for all: stacked, their row sums are one call, not one each
    (a step's three norms per parameter cost about as much as one did)."""
    width = tensors[0].shape[-1]
    rows = tf.reshape(tf.square(tf.stack(tensors)), [-1, width])
    row_sums = tf.reshape(rows @ tf.ones((width, 1)), [len(tensors), -1])
    return (row_sums @ tf.ones((row_sums.shape[1], 1)))[:, 0]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's shuffled mini-batches, a pure function of (seed, epoch): no RNG state."""
    steps = n // batch_size
    order = np.random.default_rng([seed, epoch]).permutation(n)[: steps * batch_size]
    return order.reshape(steps, batch_size).astype(np.int32)


def configure_threads(threads: int) -> None:
    """Size TensorFlow's thread pools before it starts (one job must not oversubscribe).

    ``threads`` is the job's share (Snakemake's ``threads``), capped at the CPUs this process
    may run on: ``--cores 8`` on a 2-core machine still gives each job at most 2 threads.
    """
    threads = max(1, min(threads, available_cpus()))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
