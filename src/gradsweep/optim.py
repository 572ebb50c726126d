"""The step rules: Δθ from the gradient g, and the state a rule keeps between steps.

Each is written as Keras writes it (``tests/test_remedies.py`` steps Keras' own optimizers
beside them). g is the gradient of the whole cost, ∂C0/∂θ plus the L2 penalty's (λ/n) θ for
weights (``gradsweep.train.Trainer`` adds it), so λ means the same for every rule.

Every rule is linear in g through its first moment, so its Δθ splits into the part the L2
term d θ (d = λ/n) brought in and the part ∂C0/∂θ brought in (:meth:`Optimizer.decay_updates`,
the ``decay_norm`` of the traces): plain SGD's decay part is −η d θ; momentum's is what d θ
added to the velocity, a second velocity v_d ← μ v_d − η d θ; Adam's is the part of m that
d θ added, m_d ← m_d + (1 − β₁)(d θ − m_d), over the step's own √v + ε (v holds (∂C0/∂θ +
d θ)², which does not split: the split keeps Adam's per-parameter step size as it was).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

MOMENTUM = 0.9
# Keras' Adam defaults
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7


class Optimizer:
    """θ ← θ − η g (plain SGD); subclasses keep ``n_slots`` variables per parameter, and
    ``n_decay_slots`` per parameter with weight decay (``decays``: d = λ/n of each parameter,
    0 for none), the weight decay's share of a slot (:meth:`decay_updates`)."""

    n_slots = 0
    n_decay_slots = 0

    def __init__(
        self,
        params: Sequence[tf.Variable],
        learning_rate: float,
        decays: Sequence[float] | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        self.slots = [
            [tf.Variable(tf.zeros_like(p), trainable=False) for p in params]
            for _ in range(self.n_slots)
        ]
        decays = decays or [0.0] * len(params)
        self.decay_slots = [
            [
                tf.Variable(tf.zeros_like(p), trainable=False) if d else None
                for p, d in zip(params, decays, strict=True)
            ]
            for _ in range(self.n_decay_slots)
        ]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)

    @property
    def state(self) -> list[tf.Variable]:
        """What a checkpoint must hold to resume exactly: nothing for plain SGD, else the step
        count and the slots."""
        if not self.slots:
            return []
        return [self.iterations, *(v for slot in self.slots for v in slot)]

    @property
    def decay_state(self) -> list[tf.Variable]:
        """The decay slots (none for plain SGD or without weight decay): not part of
        :attr:`state`, so that checkpoints written before they existed still read."""
        return [v for slot in self.decay_slots for v in slot if v is not None]

    def reset(self) -> None:
        """Back to the state before the first step: for the next run of a reused trainer."""
        self.iterations.assign(0)
        for variable in (v for slot in self.slots for v in slot):
            variable.assign(tf.zeros_like(variable))
        for variable in self.decay_state:
            variable.assign(tf.zeros_like(variable))

    def updates(self, gs: list[tf.Tensor]) -> list[tf.Tensor]:
        """Δθ of each parameter, for its gradient in ``gs``."""
        return [-self.learning_rate * g for g in gs]

    def decay_updates(self, terms: list[tf.Tensor | None]) -> list[tf.Tensor | None]:
        """The part of the Δθ that :meth:`updates` has just returned which the weight decay's
        terms d θ (``terms``, None where d = 0) in its g brought in; Δθ less it is the part of
        ∂C0/∂θ. Call it once after each :meth:`updates`, with the θ of that step."""
        return [None if t is None else -self.learning_rate * t for t in terms]


class Momentum(Optimizer):
    """v ← μ v − η g; Δθ = v, or μ v − η g with ``nesterov`` (μ = 0.9)."""

    n_slots = n_decay_slots = 1

    def __init__(
        self,
        params: Sequence[tf.Variable],
        learning_rate: float,
        nesterov: bool = False,
        decays: Sequence[float] | None = None,
    ) -> None:
        super().__init__(params, learning_rate, decays)
        self.nesterov = nesterov

    def updates(self, gs: list[tf.Tensor]) -> list[tf.Tensor]:
        eta, updates = self.learning_rate, []
        for g, v in zip(gs, self.slots[0], strict=True):
            v.assign(MOMENTUM * v - eta * g)
            updates.append(MOMENTUM * v - eta * g if self.nesterov else v + 0.0)
        return updates

    def decay_updates(self, terms: list[tf.Tensor | None]) -> list[tf.Tensor | None]:
        """v_d ← μ v_d − η d θ, the part of v that the decay brought in; Δθ_d = v_d, or
        μ v_d − η d θ with ``nesterov``."""
        eta, parts = self.learning_rate, []
        for t, v in zip(terms, self.decay_slots[0], strict=True):
            if t is None:
                parts.append(None)
                continue
            v.assign(MOMENTUM * v - eta * t)
            parts.append(MOMENTUM * v - eta * t if self.nesterov else v + 0.0)
        return parts


class Adam(Optimizer):
    """m ← m + (1 − β₁)(g − m), v ← v + (1 − β₂)(g² − v) at step t,
    Δθ = −η √(1 − β₂^t) / (1 − β₁^t) · m / (√v + ε), with β₁ = 0.9, β₂ = 0.999, ε = 1e-7."""

    n_slots = 2
    n_decay_slots = 1

    def _step_size(self) -> tf.Tensor:
        """α = η √(1 − β₂^t) / (1 − β₁^t) at the current step t."""
        t = tf.cast(self.iterations, tf.float32)
        return self.learning_rate * tf.sqrt(1.0 - ADAM_BETA_2**t) / (1.0 - ADAM_BETA_1**t)

    def updates(self, gs: list[tf.Tensor]) -> list[tf.Tensor]:
        self.iterations.assign_add(1)
        alpha = self._step_size()
        updates = []
        for g, m, v in zip(gs, *self.slots, strict=True):
            m.assign_add((g - m) * (1.0 - ADAM_BETA_1))
            v.assign_add((tf.square(g) - v) * (1.0 - ADAM_BETA_2))
            updates.append(-alpha * m / (tf.sqrt(v) + ADAM_EPSILON))
        return updates

    def decay_updates(self, terms: list[tf.Tensor | None]) -> list[tf.Tensor | None]:
        """m_d ← m_d + (1 − β₁)(d θ − m_d), the part of m that the decay brought in;
        Δθ_d = −α m_d / (√v + ε), with the α and v of the step just taken."""
        alpha, parts = self._step_size(), []
        for t, m, v in zip(terms, self.decay_slots[0], self.slots[1], strict=True):
            if t is None:
                parts.append(None)
                continue
            m.assign_add((t - m) * (1.0 - ADAM_BETA_1))
            parts.append(-alpha * m / (tf.sqrt(v) + ADAM_EPSILON))
        return parts


OPTIMIZERS = ("sgd", "momentum", "adam")


def make_optimizer(
    name: str,
    params: Sequence[tf.Variable],
    learning_rate: float,
    nesterov: bool = False,
    decays: Sequence[float] | None = None,
) -> Optimizer:
    """The rule called ``name`` (one of :data:`OPTIMIZERS`) for ``params``, with decay slots
    for those whose weight decay in ``decays`` is not 0."""
    if name == "sgd":
        return Optimizer(params, learning_rate, decays)
    if name == "momentum":
        return Momentum(params, learning_rate, nesterov, decays)
    if name == "adam":
        return Adam(params, learning_rate, decays)
    raise ValueError(f"optimizer = {name!r}; allowed: {', '.join(OPTIMIZERS)}")
