"""Mini-batch SGD whose every step records each layer's gradient norm.

One epoch is one compiled TensorFlow function: batches are gathered from tensors already in
memory, the per-step squared norms go into an in-graph ``TensorArray`` and reach the host once,
when the epoch ends (see ``benchmarks/README.md`` for what each choice costs). The step rules
(SGD, momentum, Adam) and their state are ``gradsweep.optim``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from gradsweep.config import available_cpus
from gradsweep.model import DenseNet, Pass, loss_function
from gradsweep.optim import OPTIMIZERS, make_optimizer  # noqa: F401  (the trainer's names)


@dataclass(frozen=True)
class SGD:
    """The settings of mini-batch stochastic training; hashable, as runs with equal settings
    share compiled code.

    ``optimizer`` names the step rule (``gradsweep.optim``): ``sgd`` (θ ← θ − η g),
    ``momentum`` (0.9; ``nesterov`` for Nesterov's form) or ``adam``, with η = ``learning_rate``.
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


class Errors(NamedTuple):
    """δ^l = ∂C0/∂z^l of every layer (``at_z``); the error at the weighted input u^l
    (``at_u``: δ^l itself without normalisation, which puts γ and û between u^l and z^l); and
    ∂C0/∂γ^l = Σ δ^l ⊙ û^l of each normalised layer (``scales``)."""

    at_z: list[tf.Tensor]
    at_u: list[tf.Tensor]
    scales: list[tf.Tensor]


class Step(NamedTuple):
    """One step's ∂C0/∂θ, the Δθ applied, and the weight decay's part of each Δθ (None where
    the parameter has no weight decay; ``gradsweep.optim.Optimizer.decay_updates``)."""

    grads: list[tf.Tensor]
    updates: list[tf.Tensor]
    decays: list[tf.Tensor | None]


class Backprop(NamedTuple):
    """∂C0/∂θ in the order of ``net.params``; batch norm's batch moments, which a training step
    folds into the moving statistics; and ⟨∂C0/∂θ, θ⟩ of every θ, when asked for."""

    grads: list[tf.Tensor]
    moments: list[tuple[tf.Tensor, tf.Tensor]]
    inners: list[tf.Tensor]


class Trainer:
    """Backpropagation (Nielsen's BP1–BP4) and the training step it drives.

    Nielsen's four equations, with δ^l = ∂C0/∂z^l the error of layer l (z^l its activation's
    input; C0 the mean cost over the batch, the output's σ folded into the loss on logits):

    - BP1 δ^L = ∇_a C ⊙ σ′(z^L) and BP2 δ^l = ((W^(l+1))ᵀ δ^(l+1)) ⊙ σ′(z^l): :meth:`errors`,
      the tape's backward pass from the cost to every z^l, which is this recursion;
    - BP3 ∂C/∂b^l = δ^l: ``tf.reduce_sum(δ^l, axis=0)``, summed over the batch's images;
    - BP4 ∂C/∂W^l = a^(l−1) δ^l, as a matrix Σ δ^l (a^(l−1))ᵀ: :func:`weight_gradient`.

    With normalisation, z^l = γ û^l + β: β takes b's BP3, W takes BP4 with the error at its
    own output u^l, and γ gets Σ δ^l ⊙ û^l. :meth:`backpropagate` applies BP3 and BP4 layer by
    layer; :meth:`step` hands ∂C/∂θ (∂C0/∂θ plus weight decay) to the step rule
    (``gradsweep.optim``) and, for momentum and Adam, sums the weight decay's part of the steps
    over the epoch in :attr:`epoch_decay` (:meth:`epoch_decay_parts`). Around them, not part
    of the chain rule: ``train_epoch``, an epoch of steps compiled as one function that records
    their norms (:class:`TracedEpoch`), and ``evaluate``, cost and accuracy of a split
    (:class:`Evaluation`).
    """

    def __init__(self, net: DenseNet, loss: str, sgd: SGD) -> None:
        self.net, self.sgd, self.loss = net, sgd, loss_function(loss)
        # L2 on weights (W), not on biases or normalisation scales
        weight_decay = sgd.l2 / sgd.l2_n
        self.decays = [weight_decay if name == "kernel" else 0.0 for _, name in net.param_names]
        self.optimizer = make_optimizer(
            sgd.optimizer, net.params, sgd.learning_rate, sgd.nesterov, self.decays
        )
        # momentum, Adam: Σ over the epoch's steps of the weight decay's part of Δθ (None: no
        # weight decay, or plain SGD, whose sum has a closed form: epoch_decay_parts)
        summed = sgd.optimizer != "sgd"
        self.epoch_decay = [
            tf.Variable(tf.zeros_like(p), trainable=False) if d and summed else None
            for p, d in zip(net.params, self.decays, strict=True)
        ]
        self.train_epoch = tf.function(TracedEpoch(self).run, jit_compile=sgd.jit_compile)
        self.probe = tf.function(self.probe_norms)
        self.evaluate = Evaluation(net, self.loss)

    @property
    def state(self) -> list[tf.Variable]:
        """What a checkpoint must hold besides the parameters to resume exactly."""
        return [*self.net.state, *self.optimizer.state]

    @property
    def decay_state(self) -> list[tf.Variable]:
        """The optimizer's decay slots, which a checkpoint holds apart (``decay``)."""
        return self.optimizer.decay_state

    def reset(self) -> None:
        """A fresh optimizer (the net's variables are set elsewhere): for the next run."""
        self.optimizer.reset()

    def epoch_decay_parts(self, start: list[np.ndarray], steps: int) -> list[np.ndarray | None]:
        """The weight decay's part D of each parameter's displacement θ_T − θ_0 over the epoch
        just trained, from θ_0 = ``start`` in T = ``steps`` steps (None: no weight decay).

        Plain SGD, in closed form (no step does any work for it): with a = 1 − η d,
        θ_T = a^T θ_0 − η Σ_t a^(T−1−t) ∂C0/∂θ_t, so D = (a^T − 1) θ_0, how far the L2 shrink
        alone moves θ_0 in T steps, and the gradient's part θ_T − a^T θ_0 is its steps, each
        shrunk by the decay after it. Momentum and Adam: Σ over the steps of their decay
        parts (:attr:`epoch_decay`, summed by :meth:`step`).
        """
        if self.sgd.optimizer != "sgd":
            return [None if t is None else t.numpy().astype(np.float64) for t in self.epoch_decay]
        eta = self.sgd.learning_rate
        return [
            (np.float64(1.0 - eta * d) ** steps - 1.0) * p.astype(np.float64) if d else None
            for p, d in zip(start, self.decays, strict=True)
        ]

    # ------------------------------------------------------------ the chain rule

    def errors(self, tape: tf.GradientTape, cost: tf.Tensor, layers: Pass) -> Errors:
        """BP1 and BP2: δ^l for every layer, the tape carrying the error back from the cost."""
        if self.net.normalization == "none":
            deltas = tape.gradient(cost, layers.zs)
            return Errors(deltas, deltas, [])
        at_z, at_u, scales = tape.gradient(cost, [layers.zs, layers.us, self.net.scales])
        return Errors(at_z, at_u, scales)

    def backpropagate(self, x: tf.Tensor, y: tf.Tensor, inner: bool = False) -> Backprop:
        """∂C0/∂θ for every parameter tensor θ: the forward pass, δ^l (BP1, BP2), then each
        layer's gradients from its error and its input a^(l−1) (BP3, BP4); ``inner``: also
        ⟨∂C0/∂θ, θ⟩ (:meth:`inner_products`)."""
        with tf.GradientTape() as tape:
            layers = self.net.forward(x)
            cost = self.loss(y, layers.zs[-1])
        errors = self.errors(tape, cost, layers)
        grads = layer_gradients(layers, errors)
        inners = self.inner_products(layers, errors, grads) if inner else []
        return Backprop(grads, layers.moments, inners)

    def inner_products(self, layers: Pass, errors: Errors, grads: list) -> list[tf.Tensor]:
        """⟨∂C0/∂θ, θ⟩ of every θ; for W^l without touching W, as ⟨Σ δ aᵀ, W⟩ = Σ δ · (W a),
        and W a is the forward pass's u^l less its bias (normalised layers have none)."""
        inners = []
        last = len(layers.zs) - 1
        for (layer, name), g, p in zip(self.net.param_names, grads, self.net.params, strict=True):
            if name == "kernel":
                i, u = layer - 1, layers.us[layer - 1]
                wa = u - self.net.biases[i] if self.net.normalization == "none" or i == last else u
                inners.append(tf.reduce_sum(errors.at_u[i] * wa))
            else:
                inners.append(tf.reduce_sum(g * p))
        return inners

    def gradients(self, x: tf.Tensor, y: tf.Tensor) -> list[tf.Tensor]:
        return self.backpropagate(x, y).grads

    def gradient_norms(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """‖∂C0/∂θ‖ per parameter tensor θ, for the mean cost over (x, y)."""
        return self.probe_norms(x, y)[0]

    def probe_norms(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """:meth:`gradient_norms`, and per hidden layer l the RMS over the n images of the
        per-image error's norm ‖δ_l(x)‖, δ_l(x) = ∂C_x/∂z^l (C_x: the image's own cost).

        C0 is the mean of the C_x, so image i's row of δ^l is δ_l(x_i)/n (BP1–BP2 on a batch
        hold every image's error); the RMS √(Σ_i ‖δ_l(x_i)‖²/n) is then √n ‖δ^l‖_F, one
        reduction of what backpropagation holds. δ_l(x) is also the image's bias gradient
        (BP3). With batch norm the images' rows share the batch statistics: each row is the
        image's part of the mean gradient, not the gradient of its cost alone."""
        with tf.GradientTape() as tape:
            layers = self.net.forward(x)
            cost = self.loss(y, layers.zs[-1])
        errors = self.errors(tape, cost, layers)
        norms = tf.stack([tf.norm(g) for g in layer_gradients(layers, errors)])
        n = tf.cast(tf.shape(x)[0], tf.float32)
        per_image = tf.stack([tf.norm(d) for d in errors.at_z[:-1]]) * tf.sqrt(n)
        return norms, per_image

    # ------------------------------------------------------------ the step

    def step(self, x: tf.Tensor, y: tf.Tensor) -> Step:
        """One step θ ← θ + Δθ for every parameter; the weight decay's part of each Δθ is
        added to :attr:`epoch_decay` (momentum and Adam)."""
        grads, moments, _ = self.backpropagate(x, y)
        self.net.update_moving_statistics(moments)
        terms = [
            decay * p if decay else None
            for p, decay in zip(self.net.params, self.decays, strict=True)
        ]
        updates = self.optimizer.updates(self.with_weight_decay(grads))
        decays = self.optimizer.decay_updates(terms)
        for p, delta in zip(self.net.params, updates, strict=True):
            p.assign_add(delta)
        for total, part in zip(self.epoch_decay, decays, strict=True):
            if total is not None:
                total.assign_add(part)
        return Step(grads, updates, decays)

    def sgd_step(self, x: tf.Tensor, y: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """:meth:`step`: the gradients and the Δθ applied."""
        grads, updates, _ = self.step(x, y)
        return grads, updates

    def with_weight_decay(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """∂C/∂θ = ∂C0/∂θ + (λ/n) θ: the L2 penalty's gradient, on W only."""
        params = self.net.params
        return [
            g + decay * p if decay else g
            for g, p, decay in zip(grads, params, self.decays, strict=True)
        ]

    def plain_sgd_step(self, x: tf.Tensor, y: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor]:
        """θ ← θ − η (∂C0/∂θ + (λ/n) θ) for every layer, weight decay on W only: the seed's
        step as one fused update per tensor. Returns the gradients and ⟨∂C0/∂θ, θ⟩ before it,
        from which :func:`plain_sgd_norms` gets ‖Δθ‖ and ‖θ‖ without reading Δθ or θ again."""
        grads, moments, inners = self.backpropagate(x, y, inner=True)
        self.net.update_moving_statistics(moments)
        for p, g, decay in zip(self.net.params, grads, self.decays, strict=True):
            p.assign_sub(self.sgd.learning_rate * (g + decay * p))
        return grads, tf.stack(inners)


class TracedEpoch:
    """An epoch of the trainer's steps as one loop, recording the norms of every
    ``trace_every``-th step: the measurement around the chain rule, not part of it.

    Three paths: untraced (steps only); plain SGD, whose ‖Δθ‖ and ‖θ‖ come in closed form from
    ‖θ‖² and ⟨∂C0/∂θ, θ⟩ (:func:`plain_sgd_norms`), and the weight decay's part of Δθ, −η d θ,
    from ‖θ‖² (the gradient's, −η ∂C0/∂θ, is η ‖∂C0/∂θ‖: not recorded twice); any other rule,
    the norms of the gradient, the Δθ applied, θ after it, and Δθ's two parts
    (:func:`squared_norms`).
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer, self.sgd, self.params = trainer, trainer.sgd, trainer.net.params

    def run(self, x: tf.Tensor, y: tf.Tensor, batches: tf.Tensor) -> dict:
        """Training over ``batches`` (steps × batch_size indices).

        Returns, for every ``trace_every``-th step (rows) and each parameter tensor θ (columns):
        ``grad`` ‖∂C0/∂θ‖, ``update`` ‖Δθ‖ of the step applied, ``param`` ‖θ‖ after it,
        ``decay`` ‖the weight decay's part of Δθ‖ and ``grad_step`` ‖Δθ less that part‖ (0 and
        ``update`` without weight decay; plain SGD: no ``grad_step``, which is η ``grad``).
        Each recorded step adds its squared norms to an in-graph TensorArray; the square roots
        are taken once, when the epoch ends. The epoch
        stops after a recorded step whose gradient is not finite: the rest would only compute
        NaNs; ``steps`` is the number of steps taken (all of them, or up to the end of the block
        of that step). Under momentum and Adam every step, traced or not, adds its decay part
        to ``Trainer.epoch_decay``, which starts the epoch at 0; plain SGD needs no sum
        (``Trainer.epoch_decay_parts``).
        """
        traced = bool(self.sgd.trace_every)
        steps = tf.shape(batches)[0]
        every = self.sgd.trace_every or steps + 1  # untraced: one block, never recorded
        n_blocks = (steps + every - 1) // every
        squares = tf.TensorArray(tf.float32, size=n_blocks if traced else 0)
        block, finite = 0, True
        for total in self.trainer.epoch_decay:
            if total is not None:
                total.assign(tf.zeros_like(total))
        # plain SGD: ‖θ‖² carried from step to step (exact at each traced block's start when
        # untraced steps come between, else from the epoch's start)
        p_sq = tf.stack([squared_norm(p) for p in self.params])
        while block < n_blocks and finite:
            first = block * every
            xb, yb = tf.gather(x, batches[first]), tf.gather(y, batches[first])
            if not traced:
                self.trainer.sgd_step(xb, yb)
            else:
                if self.sgd.optimizer == "sgd":
                    squared, p_sq = self._traced_plain_sgd_step(xb, yb, p_sq)
                else:
                    squared = self._traced_step(xb, yb)
                squares = squares.write(block, squared)
                finite = tf.reduce_all(tf.math.is_finite(squared[0]))
            if self.sgd.trace_every != 1:  # with 1 there are none: XLA compiles one step
                self._untraced_steps(x, y, batches, first + 1, tf.minimum(first + every, steps))
            block += 1
        keys = ("grad", "update", "param", "decay", "grad_step")
        if self.sgd.optimizer == "sgd":
            keys = keys[:4]  # the gradient's part of Δθ is η ‖∂C0/∂θ‖
        taken = {"steps": tf.minimum(block * every, steps)}  # untraced: every > steps
        if not traced:
            empty = tf.zeros((0, len(self.trainer.decays)))
            return {**dict.fromkeys(keys, empty), **taken}
        norms = tf.sqrt(squares.stack())  # (rows, len(keys), n_params)
        return {**{key: norms[:, i] for i, key in enumerate(keys)}, **taken}

    def _traced_step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """One step; (5, parameters): ‖g‖², ‖Δθ‖², ‖θ‖² (after the step), and ‖Δθ_d‖²,
        ‖Δθ − Δθ_d‖² of Δθ's weight-decay part Δθ_d."""
        grads, updates, decays = self.trainer.step(x, y)
        triples = zip(grads, updates, self.params, strict=True)
        norms = [squared_norms([g, d, p]) for g, d, p in triples]
        split = [
            tf.stack([tf.zeros(()), sq[1]]) if part is None else squared_norms([part, d - part])
            for sq, d, part in zip(norms, updates, decays, strict=True)
        ]
        return tf.concat([tf.stack(norms, axis=1), tf.stack(split, axis=1)], axis=0)

    def _traced_plain_sgd_step(self, x: tf.Tensor, y: tf.Tensor, p_sq: tf.Tensor) -> tuple:
        """:meth:`_traced_step` for plain SGD, ‖Δθ‖² and ‖θ‖² in closed form from ‖θ‖² before
        the step, without the gradient's part ‖η ∂C0/∂θ‖² (η² ‖∂C0/∂θ‖²: nothing to record);
        also returns ‖θ‖² after it, for the next step."""
        if self.sgd.trace_every != 1:
            p_sq = tf.stack([squared_norm(p) for p in self.params])
        grads, inner = self.trainer.plain_sgd_step(x, y)
        g_sq = tf.stack([squared_norm(g) for g in grads])
        eta, decays = self.sgd.learning_rate, self.trainer.decays
        decay_sq = (eta * tf.constant(decays, tf.float32)) ** 2 * p_sq  # ‖η d θ‖², θ before
        moved, p_sq = plain_sgd_norms(eta, decays, g_sq, inner, p_sq)
        return tf.stack([g_sq, moved, p_sq, decay_sq]), p_sq

    def _untraced_steps(
        self, x: tf.Tensor, y: tf.Tensor, batches: tf.Tensor, start: tf.Tensor, stop: tf.Tensor
    ) -> None:
        """Steps ``start`` … ``stop`` − 1, nothing recorded."""
        step = start
        while step < stop:
            self.trainer.sgd_step(tf.gather(x, batches[step]), tf.gather(y, batches[step]))
            step += 1


class Evaluation:
    """Mean cost and accuracy of the net over a split, in chunks (batch norm: its moving
    statistics)."""

    def __init__(self, net: DenseNet, loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> None:
        self.net, self.loss = net, loss
        matrix = tf.TensorSpec([None, None], tf.float32)  # any split, traced once
        self.totals = tf.function(self._totals, input_signature=[matrix, matrix])

    def _totals(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Summed cost and number of correct predictions over (x, y)."""
        logits = self.net(x, training=False)
        n = tf.cast(tf.shape(x)[0], tf.float32)
        correct = tf.reduce_sum(
            tf.cast(tf.argmax(logits, axis=1) == tf.argmax(y, axis=1), tf.float32)
        )
        return self.loss(y, logits) * n, correct

    def __call__(self, x: tf.Tensor, y: tf.Tensor, chunk: int = 10_000) -> tuple[float, float]:
        """(mean cost, accuracy) over (x, y)."""
        total_loss = total_correct = 0.0
        for start in range(0, int(x.shape[0]), chunk):
            loss, correct = self.totals(x[start : start + chunk], y[start : start + chunk])
            total_loss += float(loss)
            total_correct += float(correct)
        n = int(x.shape[0])
        return total_loss / n, total_correct / n


def layer_gradients(layers: Pass, errors: Errors) -> list[tf.Tensor]:
    """∂C0/∂θ in the order of ``net.params``, layer by layer from its error and its input
    a^(l−1): BP4 for W, BP3 for b (or β), and γ's."""
    grads = []
    for layer, a in enumerate(layers.inputs):
        grads.append(weight_gradient(errors.at_u[layer], a))  # BP4
        grads.append(tf.reduce_sum(errors.at_z[layer], axis=0))  # BP3
        if layer < len(errors.scales):
            grads.append(errors.scales[layer])  # γ
    return grads


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


def plain_sgd_norms(
    eta: float, decays: list[float], g_sq: tf.Tensor, inner: tf.Tensor, p_sq: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Plain SGD's ‖Δθ‖² and ‖θ + Δθ‖² from ‖g‖², ⟨g, θ⟩ and ‖θ‖² (all before the step):
    with g' = g + d θ (d the weight decay) and Δθ = −η g',
    ‖Δθ‖² = η² (‖g‖² + 2 d ⟨g, θ⟩ + d² ‖θ‖²), ‖θ + Δθ‖² = ‖θ‖² − 2 η ⟨θ, g'⟩ + ‖Δθ‖²."""
    d = tf.constant(decays, tf.float32)
    moved = eta**2 * (g_sq + 2.0 * d * inner + d**2 * p_sq)
    after = p_sq - 2.0 * eta * (inner + d * p_sq) + moved
    return moved, tf.maximum(after, 0.0)


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
