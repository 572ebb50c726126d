"""Mean-field theory of signal and gradient propagation in wide random dense nets.

The theory beside the measurement (issue 23): what an infinitely wide net at initialisation
predicts for the per-layer gradient norms that gradsweep measures. Sources: Poole, Lahiri,
Raghu, Sohl-Dickstein & Ganguli 2016 ("Exponential expressivity in deep neural networks
through transient chaos"); Schoenholz, Gilmer, Ganguli & Sohl-Dickstein, ICLR 2017 ("Deep
Information Propagation"); Pennington, Schoenholz & Ganguli 2017 ("Resurrecting the sigmoid").

Model: h^l = W^l φ(h^(l−1)) + b^l with W^l_ij ~ N(0, σ_w²/fan_in), b^l_i ~ N(0, σ_b²), all
independent; z, z1, z2 are independent standard normals. The quantities:

- q* — the stable fixed point of the variance map q ↦ σ_w² E[φ(√q z)²] + σ_b²: the
  per-unit pre-activation variance deep in the net. 0 when the map sends every variance to 0
  (σ_b² = 0 with φ(0) = 0 in the ordered phase); ``inf`` when it has no finite fixed point
  (an unbounded φ with σ_w² past its critical value, e.g. ReLU with σ_w² ≥ 2 and σ_b² > 0);
  NaN when every q is a fixed point (a positively homogeneous φ at σ_b² = 0 and χ₁ = 1).
- χ₁ = σ_w² E[φ′(√q* z)²]: the mean factor by which ‖δ^l‖² (the backpropagated error)
  shrinks per layer moved toward the input. At q* = 0 it is the q → 0 limit, at q* = ∞
  the q → ∞ limit, σ_w² (a₋² + a₊²)/2 with a± the asymptotic slopes of φ.
- ξ_∇ = −1/ln χ₁, the gradient depth scale: ‖δ‖² ∝ exp(−(layers toward input)/ξ_∇).
  Positive when gradients vanish toward the input (χ₁ < 1), +inf at χ₁ = 1, negative when
  they explode (|ξ_∇| is then the e-folding length of the growth).
- The correlation map c ↦ (σ_w² E[φ(u1)φ(u2)] + σ_b²)/q* with u1 = √q* z1 and
  u2 = √q* (c z1 + √(1−c²) z2): how the correlation of two inputs' pre-activations evolves.
  c* is its stable fixed point (1 in the ordered phase χ₁ ≤ 1, below 1 in the chaotic phase),
  χ_c = σ_w² E[φ′(u1)φ′(u2)] at c* its slope there (χ_c = χ₁ when c* = 1), and
  ξ_c = −1/ln χ_c the depth over which two inputs' correlation relaxes to c*.
- The critical line σ_w²(σ_b²) where χ₁ = 1 (order ↔ chaos, ξ_∇ = ξ_c = ∞).
- Gradient norms across k layers: ‖δ^(l+k)‖/‖δ^l‖ = χ₁^(−k/2) (the orientation of
  gradsweep's ``grad_ratio``, last ÷ first hidden layer), a slope of ln χ₁/2 in ln‖δ‖ per
  layer moved toward the input.

Where the theory does not apply (or only approximately):

- Finite width: the predictions are the N → ∞ limit; at width N the per-layer quantities
  fluctuate by O(1/√N) (tests/test_meanfield.py measures this at N = 2,000) and the gradient
  independence assumption (backprop's W^T drawn afresh) is exact only in the limit.
- The first layers: q^l approaches q* (and c^l approaches c*) only after a few layers; the
  input layer's variance is whatever the data give. χ₁ is evaluated at q*, so a net shallower
  than the convergence depth, or data far from the fixed point, deviates.
- ReLU (and leaky ReLU, linear): χ₁ = σ_w² (a₋² + a₊²)/2 for every q. At σ_b² = 0 the single
  critical point is σ_w² = 2 (ReLU), where every q is a fixed point; with σ_b² > 0 the
  variance grows without bound at σ_w² = 2 (q* = ∞), so there is no critical line with
  σ_b² > 0 in the usual sense: :func:`critical_sigma_w2` still returns the χ₁ = 1 point (where
  gradient norms are preserved), and c* = 1 wherever q* is finite. Softplus likewise: χ₁ <
  σ_w²/2 < 1 wherever q* is finite, and its χ₁ = 1 point σ_w² = 2 is where q* diverges.
- Non-Gaussian inputs: the pre-activations are Gaussian over the random weights at any
  width, but at layer 1 their variance is ‖x‖²σ_w²/fan_in + σ_b², set by the data.
- Batch norm, layer norm and residual connections change both maps; none is modelled here.
- Weight gradients: ∂L/∂W^l = δ^l a^(l−1)ᵀ also carries ‖a^(l−1)‖, the same at every layer once
  q = q*, but the first layer's a^0 is the data.

Numerics: expectations are composite Gauss–Legendre quadratures split at 0 (where each
registry activation is kinked or changes fastest), with panels graded geometrically toward 0.
Gauss–Hermite (``numpy.polynomial.hermite_e.hermegauss``) was the first choice, but it does not
resolve φ′(√q z) once q is large (tanh's E[φ′²] at q = 100 is 45 % low with 256 points),
and q* is in the hundreds for the sweep's unscaled N(0, 1) init; the tests use Gauss–Hermite
and ``scipy.integrate`` as independent oracles where those are accurate. The 2-D correlation
integrals use polar coordinates with the angle split at the four kink directions (u1 = 0 and
u2 = 0), so ReLU's step derivative is integrated exactly up to rounding.

NumPy and SciPy only: no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.optimize
import scipy.special

from gradsweep.registry import ACTIVATIONS as ACTIVATION_NAMES

Array = np.ndarray
Fn = Callable[[Array], Array]

LEAKY_RELU_ALPHA = 0.01  # gradsweep.model: tf.nn.leaky_relu(alpha=0.01)
ELU_ALPHA = 1.0  # tf.nn.elu

PANEL_POINTS = 12
"""Gauss–Legendre points per quadrature panel."""
Z_MAX = 10.0
"""Standard-normal coordinates beyond ±Z_MAX (radius Z_MAX in 2-D) are dropped: mass < 2e-22."""
FINEST_1D = 2.0**-24
"""The 1-D rule's finest panel next to 0: resolves φ(√q z) up to q ≈ 1e12."""
Q_MAX = 1e12
"""A variance fixed point above this is reported as q* = inf."""
Q_TINY = 1e-200
"""q* = 0 is evaluated as this q (the q → 0 limit; √Q_TINY · z keeps the sign of z)."""


@dataclass(frozen=True)
class Activation:
    """φ and φ′ in NumPy, as gradsweep.model implements them (TensorFlow).

    ``slopes``: φ′ as x → −∞ and x → +∞ (0 for a bounded φ); they give χ₁ when q* = ∞.
    ``homogeneous``: φ(a x) = a φ(x) for a > 0 (then at σ_b² = 0 the variance map is linear).
    """

    phi: Fn
    dphi: Fn
    slopes: tuple[float, float] = (0.0, 0.0)
    homogeneous: bool = False


def _sigmoid_prime(x: Array) -> Array:
    s = scipy.special.expit(x)
    return s * (1.0 - s)


def _elu(x: Array) -> Array:
    return np.where(x > 0, x, ELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


def _elu_prime(x: Array) -> Array:
    return np.where(x > 0, 1.0, ELU_ALPHA * np.exp(np.minimum(x, 0.0)))


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(scipy.special.expit, _sigmoid_prime),
    "tanh": Activation(np.tanh, lambda x: 1.0 / np.cosh(np.minimum(np.abs(x), 350.0)) ** 2),
    "relu": Activation(
        lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float), (0.0, 1.0), True
    ),
    "leaky_relu": Activation(
        lambda x: np.where(x > 0, x, LEAKY_RELU_ALPHA * x),
        lambda x: np.where(x > 0, 1.0, LEAKY_RELU_ALPHA),
        (LEAKY_RELU_ALPHA, 1.0),
        True,
    ),
    "elu": Activation(_elu, _elu_prime, (0.0, 1.0)),
    "softplus": Activation(lambda x: np.logaddexp(0.0, x), scipy.special.expit, (0.0, 1.0)),
    "softsign": Activation(lambda x: x / (1.0 + np.abs(x)), lambda x: (1.0 + np.abs(x)) ** -2.0),
    "linear": Activation(lambda x: x, np.ones_like, (1.0, 1.0), True),
}
if tuple(ACTIVATIONS) != ACTIVATION_NAMES:  # the registry is the single source of the names
    raise ImportError(f"meanfield implements {tuple(ACTIVATIONS)}, registry {ACTIVATION_NAMES}")


# ----------------------------------------------------------------------------- quadrature


def _graded_breaks(length: float, finest: float) -> Array:
    """Panel ends on [0, length]: finest·2^k toward 1, then unit steps (or one panel if short)."""
    top = min(1.0, length)
    k = np.arange(math.floor(math.log2(finest / top)), 0) if finest < top else np.arange(0)
    geometric = top * 2.0 ** k.astype(float)
    linear = np.arange(1.0, length, 1.0) if length > 1 else np.empty(0)
    return np.unique(np.concatenate([[0.0], geometric, linear, [length]]))


@cache
def _legendre(points: int) -> tuple[Array, Array]:
    return np.polynomial.legendre.leggauss(points)


def _panels(breaks: Array, points: int = PANEL_POINTS) -> tuple[Array, Array]:
    """Gauss–Legendre nodes and weights on each panel [breaks[i], breaks[i+1]]."""
    x, w = _legendre(points)
    a, b = breaks[:-1, None], breaks[1:, None]
    return ((a + b) / 2 + (b - a) / 2 * x).ravel(), ((b - a) / 2 * w).ravel()


@cache
def _rule_1d() -> tuple[Array, Array]:
    """Nodes z and weights w with Σ w f(z) ≈ E[f(z)], z ~ N(0, 1), for f smooth off z = 0."""
    t, w = _panels(_graded_breaks(Z_MAX, FINEST_1D))
    w = w * np.exp(-(t**2) / 2)
    z, w = np.concatenate([-t[::-1], t]), np.concatenate([w[::-1], w])
    return z, w / w.sum()


def gaussian_mean(f: Fn, q: Array | float) -> Array:
    """E[f(√q z)], z ~ N(0, 1), for each q (any shape); f smooth on each side of 0."""
    z, w = _rule_1d()
    root = np.sqrt(np.asarray(q, dtype=float))[..., None]
    return f(root * z) @ w


def _arc_breaks(a: float, b: float, finest: float) -> Array:
    """Panel ends on the arc [a, b], graded geometrically toward both ends."""
    half = (b - a) / 2
    grade = _graded_breaks(half, finest) if half > finest else np.array([0.0, half])
    return np.unique(np.concatenate([a + grade, b - grade]))


def _rule_2d(q: float, c: float) -> tuple[Array, Array, Array]:
    """Nodes (z1, z2) and weights for E[f(z1, z2)] over two independent standard normals.

    Polar coordinates: the angle is split where u1 = √q z1 or u2 = √q (c z1 + √(1−c²) z2)
    changes sign (the activations' kinks), and graded toward those directions and toward r = 0
    on the scale min(1, 1/√q) on which φ(√q ·) varies.
    """
    finest = min(1.0, 1.0 / math.sqrt(q)) / 64
    alpha = math.acos(min(1.0, max(-1.0, c)))  # u2 ∝ cos(θ − alpha)
    kinks = np.sort(
        np.mod([np.pi / 2, 3 * np.pi / 2, alpha + np.pi / 2, alpha + 3 * np.pi / 2], 2 * np.pi)
    )
    ends = np.unique(np.concatenate([kinks, [kinks[0] + 2 * np.pi]]))
    theta = [_panels(_arc_breaks(a, b, finest)) for a, b in zip(ends[:-1], ends[1:], strict=True)]
    th, wt = np.concatenate([t for t, _ in theta]), np.concatenate([w for _, w in theta])
    r, wr = _panels(_graded_breaks(Z_MAX, finest))
    wr = wr * r * np.exp(-(r**2) / 2)
    z1, z2 = np.outer(r, np.cos(th)).ravel(), np.outer(r, np.sin(th)).ravel()
    w = np.outer(wr, wt).ravel()
    return z1, z2, w / w.sum()


def pair_mean(f: Fn, q: float, c: float) -> float:
    """E[f(u1) f(u2)] for u1 = √q z1, u2 = √q (c z1 + √(1−c²) z2); f smooth off 0."""
    z1, z2, w = _rule_2d(q, c)
    root, s = math.sqrt(q), math.sqrt(max(0.0, 1.0 - c * c))
    return float(f(root * z1) * f(root * (c * z1 + s * z2)) @ w)


# ----------------------------------------------------------------------------- the maps


def activation(name: str) -> Activation:
    """The registry activation ``name`` (KeyError names the known ones)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise KeyError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None


def q_map(name: str, q: Array | float, sigma_w2: Array | float, sigma_b2: Array | float) -> Array:
    """The variance map σ_w² E[φ(√q z)²] + σ_b² (broadcast over all arguments)."""
    act = activation(name)
    q, sigma_w2, sigma_b2 = np.broadcast_arrays(
        *(np.asarray(v, float) for v in (q, sigma_w2, sigma_b2))
    )
    return sigma_w2 * gaussian_mean(lambda x: act.phi(x) ** 2, q) + sigma_b2


def _elementwise(fn: Callable[..., float], *args: Array | float) -> Array | float:
    """fn over the broadcast of args: a float for scalar arguments, else an array."""
    arrays = np.broadcast_arrays(*(np.asarray(a, float) for a in args))
    out = np.array(
        [fn(*map(float, vals)) for vals in zip(*(a.ravel() for a in arrays), strict=True)]
    )
    return float(out[0]) if arrays[0].ndim == 0 else out.reshape(arrays[0].shape)


def _q_star(name: str, sigma_w2: float, sigma_b2: float) -> float:
    act = activation(name)

    def gap(q: float) -> float:  # F(q) − q, relative to q so that tiny and huge q both resolve
        return float(q_map(name, q, sigma_w2, sigma_b2)) / q - 1.0

    if float(q_map(name, 0.0, sigma_w2, sigma_b2)) == 0.0:  # q = 0 is a fixed point
        slope = sigma_w2 * float(gaussian_mean(lambda x: act.dphi(x) ** 2, Q_TINY))
        if act.homogeneous and slope == 1.0:
            return math.nan  # the map is the identity: every q is a fixed point
        if slope <= 1.0:
            return 0.0  # stable (the ordered phase at σ_b² = 0)
        low = 1e-12  # just past the transition q* is tiny (∝ (σ_w² − 1)^2 for ELU)
        while gap(low) <= 0.0:
            if low < 1e-150:
                return 0.0
            low *= 1e-6
    else:
        low = float(q_map(name, 0.0, sigma_w2, sigma_b2))
        if gap(low) <= 0.0:  # F(low) ≤ low: F(0) is (numerically) the fixed point already
            return low
    high = max(2.0 * low, 1.0)
    while gap(high) > 0.0:
        if high > Q_MAX:
            return math.inf
        high *= 4.0
    return scipy.optimize.brentq(gap, low, high, xtol=1e-300, rtol=4 * np.finfo(float).eps)


def q_star(name: str, sigma_w2: Array | float, sigma_b2: Array | float) -> Array | float:
    """The stable fixed point q* of :func:`q_map` (0, inf or NaN as the module docstring says)."""
    return _elementwise(lambda w, b: _q_star(name, w, b), sigma_w2, sigma_b2)


def _chi_1_at(act: Activation, q: Array, sigma_w2: Array) -> Array:
    """σ_w² E[φ′(√q z)²], with q = 0 and q = inf as limits."""
    if act.homogeneous:  # φ′(a x) = φ′(x) for a > 0: χ₁ is the same at every q
        q = np.where(np.isnan(q), 1.0, q)
    finite = np.where(np.isfinite(q), np.maximum(q, Q_TINY), 1.0)
    chi = sigma_w2 * gaussian_mean(lambda x: act.dphi(x) ** 2, finite)
    at_infinity = sigma_w2 * (act.slopes[0] ** 2 + act.slopes[1] ** 2) / 2
    return np.where(np.isposinf(q), at_infinity, np.where(np.isnan(q), np.nan, chi))


def chi_1(name: str, sigma_w2: Array | float, sigma_b2: Array | float) -> Array | float:
    """χ₁ = σ_w² E[φ′(√q* z)²]: the per-layer factor of ‖δ‖² toward the input."""
    q = np.asarray(q_star(name, sigma_w2, sigma_b2))
    sigma_w2 = np.broadcast_to(np.asarray(sigma_w2, float), q.shape)
    out = _chi_1_at(activation(name), q, sigma_w2)
    return float(out) if out.ndim == 0 else out


def depth_scale(chi: Array | float) -> Array | float:
    """−1/ln χ: positive for χ < 1 (decay), +inf at χ = 1, negative for χ > 1 (growth)."""
    chi = np.asarray(chi, dtype=float)
    with np.errstate(divide="ignore"):
        out = np.where(chi == 1.0, np.inf, -1.0 / np.log(chi))
    return float(out) if out.ndim == 0 else out


def c_map(name: str, c: float, sigma_w2: float, sigma_b2: float, q: float | None = None) -> float:
    """(σ_w² E[φ(u1)φ(u2)] + σ_b²)/q at correlation c (q: the variance, default q*)."""
    q = _q_star(name, sigma_w2, sigma_b2) if q is None else q
    if not 0.0 < q < math.inf:
        return math.nan
    return (sigma_w2 * pair_mean(activation(name).phi, q, c) + sigma_b2) / q


def _correlation(name: str, sigma_w2: float, sigma_b2: float) -> tuple[float, float]:
    """(c*, χ_c) at q*: both NaN unless 0 < q* < inf."""
    act, q = activation(name), _q_star(name, sigma_w2, sigma_b2)
    if not 0.0 < q < math.inf:
        return math.nan, math.nan
    chi = float(_chi_1_at(act, np.asarray(q), np.asarray(sigma_w2)))
    if chi <= 1.0:
        return 1.0, chi  # ordered: c = 1 attracts, and the map's slope there is χ₁

    def gap(c: float) -> float:
        return c_map(name, c, sigma_w2, sigma_b2, q) - c

    c = 1.0  # if no gap < 0 is found: c* indistinguishable from 1 (χ₁ barely above 1)
    for eps in 10.0 ** -np.arange(2, 10):  # gap < 0 just below 1 (slope χ₁ > 1 at c = 1)
        if gap(1.0 - eps) < 0.0:
            c = scipy.optimize.brentq(gap, -1.0, 1.0 - eps, xtol=1e-12)
            break
    return c, sigma_w2 * pair_mean(act.dphi, q, c)


def c_star(name: str, sigma_w2: Array | float, sigma_b2: Array | float) -> Array | float:
    """The stable fixed point c* of :func:`c_map` (NaN unless 0 < q* < inf)."""
    return _elementwise(lambda w, b: _correlation(name, w, b)[0], sigma_w2, sigma_b2)


def chi_c(name: str, sigma_w2: Array | float, sigma_b2: Array | float) -> Array | float:
    """χ_c = σ_w² E[φ′(u1)φ′(u2)] at (q*, c*): the slope of the correlation map at c*."""
    return _elementwise(lambda w, b: _correlation(name, w, b)[1], sigma_w2, sigma_b2)


def _critical(name: str, sigma_b2: float) -> float:
    def gap(log_w: float) -> float:
        return float(chi_1(name, math.exp(log_w), sigma_b2)) - 1.0

    high = 0.0  # ln σ_w²
    while gap(high) < 0.0:
        if high > math.log(1e8):
            return math.nan
        high += 1.0
    low = high - 1.0
    while gap(low) > 0.0:
        low -= 1.0
    return math.exp(scipy.optimize.brentq(gap, low, high, xtol=1e-13))


def critical_sigma_w2(name: str, sigma_b2: Array | float) -> Array | float:
    """σ_w² at which χ₁ = 1 for each σ_b²: the order–chaos critical line (brentq in ln σ_w²)."""
    return _elementwise(lambda b: _critical(name, b), sigma_b2)


def gradient_ratio(chi: Array | float, k: Array | float) -> Array | float:
    """χ₁^(−k/2): ‖δ‖ at layer l + k ÷ at layer l (gradsweep's grad_ratio: last ÷ first)."""
    out = np.asarray(chi, dtype=float) ** (-np.asarray(k, dtype=float) / 2)
    return float(out) if out.ndim == 0 else out


def gradient_slope(chi: Array | float) -> Array | float:
    """ln χ₁ / 2: the change of ln‖δ‖ per layer moved toward the input (< 0: vanishing)."""
    out = np.log(np.asarray(chi, dtype=float)) / 2
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class MeanField:
    """Every mean-field quantity of one (activation, σ_w², σ_b²)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi_1: float
    xi_grad: float
    c_star: float
    chi_c: float
    xi_c: float


def mean_field(name: str, sigma_w2: float, sigma_b2: float) -> MeanField:
    """q*, χ₁, ξ_∇, c*, χ_c, ξ_c of one setting."""
    chi = float(chi_1(name, sigma_w2, sigma_b2))
    c, slope = _correlation(name, sigma_w2, sigma_b2)
    return MeanField(
        activation=name,
        sigma_w2=float(sigma_w2),
        sigma_b2=float(sigma_b2),
        q_star=_q_star(name, sigma_w2, sigma_b2),
        chi_1=chi,
        xi_grad=float(depth_scale(chi)),
        c_star=c,
        chi_c=slope,
        xi_c=float(depth_scale(slope)),
    )
