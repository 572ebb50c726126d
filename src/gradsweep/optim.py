"""The step rules: Δθ from the gradient g, and the state a rule keeps between steps.

Each is written as Keras writes it (``tests/test_remedies.py`` steps Keras' own optimizers
beside them). g is the gradient of the whole cost, ∂C0/∂θ plus the L2 penalty's (λ/n) θ for
weights (``gradsweep.train.Trainer`` adds it), so λ means the same for every rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

MOMENTUM = 0.9
# Keras' Adam defaults
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7


class Optimizer:
    """θ ← θ − η g (plain SGD); subclasses keep ``n_slots`` variables per parameter."""

    n_slots = 0

    def __init__(self, params: Sequence[tf.Variable], learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.slots = [
            [tf.Variable(tf.zeros_like(p), trainable=False) for p in params]
            for _ in range(self.n_slots)
        ]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)

    @property
    def state(self) -> list[tf.Variable]:
        """What a checkpoint must hold to resume exactly: nothing for plain SGD, else the step
        count and the slots."""
        if not self.slots:
            return []
        return [self.iterations, *(v for slot in self.slots for v in slot)]

    def reset(self) -> None:
        """Back to the state before the first step: for the next run of a reused trainer."""
        self.iterations.assign(0)
        for variable in (v for slot in self.slots for v in slot):
            variable.assign(tf.zeros_like(variable))

    def updates(self, gs: list[tf.Tensor]) -> list[tf.Tensor]:
        """Δθ of each parameter, for its gradient in ``gs``."""
        return [-self.learning_rate * g for g in gs]


class Momentum(Optimizer):
    """v ← μ v − η g; Δθ = v, or μ v − η g with ``nesterov`` (μ = 0.9)."""

    n_slots = 1

    def __init__(
        self, params: Sequence[tf.Variable], learning_rate: float, nesterov: bool = False
    ) -> None:
        super().__init__(params, learning_rate)
        self.nesterov = nesterov

    def updates(self, gs: list[tf.Tensor]) -> list[tf.Tensor]:
        eta, updates = self.learning_rate, []
        for g, v in zip(gs, self.slots[0], strict=True):
            v.assign(MOMENTUM * v - eta * g)
            updates.append(MOMENTUM * v - eta * g if self.nesterov else v + 0.0)
        return updates


class Adam(Optimizer):
    """m ← m + (1 − β₁)(g − m), v ← v + (1 − β₂)(g² − v) at step t,
    Δθ = −η √(1 − β₂^t) / (1 − β₁^t) · m / (√v + ε), with β₁ = 0.9, β₂ = 0.999, ε = 1e-7."""

    n_slots = 2

    def updates(self, gs: list[tf.Tensor]) -> list[tf.Tensor]:
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        alpha = self.learning_rate * tf.sqrt(1.0 - ADAM_BETA_2**t) / (1.0 - ADAM_BETA_1**t)
        updates = []
        for g, m, v in zip(gs, *self.slots, strict=True):
            m.assign_add((g - m) * (1.0 - ADAM_BETA_1))
            v.assign_add((tf.square(g) - v) * (1.0 - ADAM_BETA_2))
            updates.append(-alpha * m / (tf.sqrt(v) + ADAM_EPSILON))
        return updates


OPTIMIZERS = ("sgd", "momentum", "adam")


def make_optimizer(
    name: str, params: Sequence[tf.Variable], learning_rate: float, nesterov: bool = False
) -> Optimizer:
    """The rule called ``name`` (one of :data:`OPTIMIZERS`) for ``params``."""
    if name == "sgd":
        return Optimizer(params, learning_rate)
    if name == "momentum":
        return Momentum(params, learning_rate, nesterov)
    if name == "adam":
        return Adam(params, learning_rate)
    raise ValueError(f"optimizer = {name!r}; allowed: {', '.join(OPTIMIZERS)}")
