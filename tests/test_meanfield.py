"""gradsweep.meanfield against closed forms, independent quadratures and random wide nets.

Oracles: closed forms (ReLU, leaky ReLU, linear; the arc-cosine kernel of Cho & Saul 2009 for
ReLU's correlation integrals), ``scipy.integrate.quad``, ``hermegauss`` where Gauss–Hermite is
accurate, brute-force Monte-Carlo integrals, and random nets of width 2,000 propagated in NumPy.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
from numpy.polynomial.hermite_e import hermegauss

from gradsweep import meanfield as mf
from gradsweep import registry

SQRT_2PI = math.sqrt(2 * math.pi)


def quad_mean(f, q: float) -> float:
    """E[f(√q z)] by scipy.integrate.quad, with breakpoints at the scale 1/√q of φ(√q ·)."""
    s = math.sqrt(q)

    def even(z: float) -> float:  # split at 0: f is evaluated on each side of its kink
        x = np.array([s * z, -s * z])
        return float(np.sum(f(x))) * math.exp(-z * z / 2) / SQRT_2PI

    points = [p for p in (0.3 / s, 1 / s, 3 / s, 10 / s) if p < 12]
    return scipy.integrate.quad(even, 0, 12, points=points, epsabs=0, epsrel=1e-12, limit=500)[0]


def quad_q_star(name: str, sigma_w2: float, sigma_b2: float) -> float:
    phi = mf.ACTIVATIONS[name].phi
    return scipy.optimize.brentq(
        lambda q: sigma_w2 * quad_mean(lambda x: phi(x) ** 2, q) + sigma_b2 - q,
        sigma_b2 if sigma_b2 > 0 else 1e-6,  # at σ_b² = 0: a q* > 0 (chaotic), F(q) > q below it
        sigma_w2 + sigma_b2 + 1.0,
        xtol=1e-14,
    )


def quad_chi_1(name: str, sigma_w2: float, sigma_b2: float) -> float:
    dphi = mf.ACTIVATIONS[name].dphi
    return sigma_w2 * quad_mean(lambda x: dphi(x) ** 2, quad_q_star(name, sigma_w2, sigma_b2))


# ----------------------------------------------------------------------------- activations


def test_activations_are_the_registry_s_and_need_no_tensorflow():
    assert tuple(mf.ACTIVATIONS) == registry.ACTIVATIONS
    code = "import sys, gradsweep.meanfield; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_activation_values_and_derivatives():
    at = {  # φ(−1), φ(0), φ(2) as gradsweep.model's TensorFlow functions define them
        "sigmoid": (1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-2))),
        "tanh": (math.tanh(-1), 0.0, math.tanh(2)),
        "relu": (0.0, 0.0, 2.0),
        "leaky_relu": (-0.01, 0.0, 2.0),
        "elu": (math.exp(-1) - 1, 0.0, 2.0),
        "softplus": (math.log1p(math.exp(-1)), math.log(2), math.log1p(math.exp(2))),
        "softsign": (-0.5, 0.0, 2 / 3),
        "linear": (-1.0, 0.0, 2.0),
    }
    x = np.linspace(-6, 6, 1201)
    x = x[np.abs(x) > 1e-3]  # central differences away from the kink at 0
    for name, act in mf.ACTIVATIONS.items():
        np.testing.assert_allclose(act.phi(np.array([-1.0, 0.0, 2.0])), at[name], atol=1e-15)
        numeric = (act.phi(x + 1e-6) - act.phi(x - 1e-6)) / 2e-6
        np.testing.assert_allclose(act.dphi(x), numeric, atol=1e-8, err_msg=name)
        slopes = (act.dphi(np.array(-1e8)), act.dphi(np.array(1e8)))
        np.testing.assert_allclose(slopes, act.slopes, atol=1e-12, err_msg=name)


# ----------------------------------------------------------------------------- quadrature


@pytest.mark.parametrize("q", [1e-4, 0.3, 1.0, 100.0, 1e4])
def test_gaussian_mean_matches_scipy_quad_for_every_activation(q):
    for name, act in mf.ACTIVATIONS.items():
        for f in (lambda x, a=act: a.phi(x) ** 2, lambda x, a=act: a.dphi(x) ** 2):
            assert float(mf.gaussian_mean(f, q)) == pytest.approx(quad_mean(f, q), rel=1e-10), name


def test_gauss_hermite_is_accurate_at_small_q_only():
    """Why the module does not use hermegauss: fine at q = 1, far off once φ(√q ·) is steep."""
    z, w = hermegauss(256)
    w = w / w.sum()
    dphi2 = lambda x: mf.ACTIVATIONS["tanh"].dphi(x) ** 2  # noqa: E731
    assert dphi2(z) @ w == pytest.approx(float(mf.gaussian_mean(dphi2, 1.0)), rel=1e-12)
    hermite_100 = dphi2(10 * z) @ w
    exact_100 = quad_mean(dphi2, 100.0)
    assert float(mf.gaussian_mean(dphi2, 100.0)) == pytest.approx(exact_100, rel=1e-10)
    assert hermite_100 / exact_100 - 1 < -0.3


@pytest.mark.parametrize("q", [0.01, 1.0, 100.0, 1e6])
@pytest.mark.parametrize("c", [-0.99, -0.5, 0.0, 0.3, 0.9, 0.999, 1.0])
def test_relu_pair_means_match_the_arc_cosine_kernel(q, c):
    """Cho & Saul 2009: E[relu(u1)relu(u2)] = q (sin θ + (π−θ) cos θ)/2π, E[step·step] =
    (π−θ)/2π with cos θ = c: ReLU's kinks, split exactly, leave rounding error only."""
    theta = math.acos(c)
    relu = mf.ACTIVATIONS["relu"]
    expected = q * (math.sin(theta) + (math.pi - theta) * c) / (2 * math.pi)
    assert mf.pair_mean(relu.phi, q, c) == pytest.approx(expected, rel=1e-12)
    assert mf.pair_mean(relu.dphi, q, c) == pytest.approx((math.pi - theta) / (2 * math.pi))


def test_smooth_pair_means_match_tensor_gauss_hermite():
    z, w = hermegauss(120)
    w = w / w.sum()
    z1, z2, ww = z[:, None], z[None, :], np.outer(w, w)
    for q, c in [(0.5, 0.3), (1.0, -0.7), (0.2, 0.95)]:
        u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
        for name in ("tanh", "sigmoid", "softplus"):
            for f in (mf.ACTIVATIONS[name].phi, mf.ACTIVATIONS[name].dphi):
                expected = np.sum(f(u1) * f(u2) * ww)
                assert mf.pair_mean(f, q, c) == pytest.approx(expected, rel=1e-11), name


# ----------------------------------------------------------------------------- closed forms


def test_relu_leaky_relu_and_linear_closed_forms():
    w = np.array([0.5, 1.0, 1.9, 2.0, 3.0])
    for b in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(mf.chi_1("relu", w, b), w / 2, rtol=1e-13)
        np.testing.assert_allclose(mf.chi_1("leaky_relu", w, b), w * (1 + 0.01**2) / 2)
        np.testing.assert_allclose(mf.chi_1("linear", w, b), w, rtol=1e-13)
    # q* = σ_b²/(1 − σ_w²/2) below 2; with σ_b² > 0 no finite fixed point from σ_w² = 2 on
    np.testing.assert_allclose(
        mf.q_star("relu", w, 0.3), [0.4, 0.6, 6.0, math.inf, math.inf], rtol=1e-12
    )
    np.testing.assert_allclose(mf.q_star("relu", [1.0, 3.0], 0.0), [0.0, math.inf])
    assert math.isnan(mf.q_star("relu", 2.0, 0.0))  # the identity map: every q is fixed
    assert mf.chi_1("relu", 2.0, 0.0) == 1.0
    np.testing.assert_allclose(mf.q_star("linear", [0.5, 0.8], 0.2), [0.4, 1.0], rtol=1e-12)
    np.testing.assert_allclose(mf.critical_sigma_w2("relu", [0.0, 0.5]), 2.0, rtol=1e-12)
    np.testing.assert_allclose(mf.critical_sigma_w2("linear", 0.0), 1.0, rtol=1e-12)


def test_tanh_critical_at_sigma_b2_zero_is_one():
    """At σ_b² = 0 q* leaves 0 at σ_w² φ′(0)² = 1; just above, χ₁ − 1 ≈ ε²/3 (q* ≈ ε/2)."""
    assert mf.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    assert mf.q_star("tanh", 0.9, 0.0) == 0.0
    assert mf.chi_1("tanh", 0.9, 0.0) == pytest.approx(0.9, rel=1e-12)  # χ₁ = σ_w² φ′(0)²
    eps = 1e-2
    assert mf.q_star("tanh", 1 + eps, 0.0) == pytest.approx(quad_q_star("tanh", 1 + eps, 0.0))


def test_tanh_critical_at_sigma_b2_0_05_is_1_76_checked_by_brute_force():
    """σ_w² ≈ 1.76 at σ_b² = 0.05: the value the brief quotes after Schoenholz et al. 2017.
    Checked here independently: q* by fixed-point iteration over 2·10^6 Monte-Carlo samples,
    then χ₁ = 1 within 4 Monte-Carlo standard errors, and by scipy.integrate.quad."""
    critical = float(mf.critical_sigma_w2("tanh", 0.05))
    assert critical == pytest.approx(1.761, abs=5e-4)
    z = np.random.default_rng(5).standard_normal(2_000_000)
    q = 1.0
    for _ in range(60):  # the q map contracts (slope < 0.6), so 60 steps reach rounding
        q = critical * np.mean(np.tanh(math.sqrt(q) * z) ** 2) + 0.05
    samples = critical / np.cosh(math.sqrt(q) * z) ** 4
    se = samples.std() / math.sqrt(len(z))
    assert abs(samples.mean() - 1.0) < 4 * se, (samples.mean(), se)
    assert quad_chi_1("tanh", critical, 0.05) == pytest.approx(1.0, abs=1e-9)
    assert quad_chi_1("tanh", 1.70, 0.05) < 1 < quad_chi_1("tanh", 1.82, 0.05)


def test_issue_example_sigmoid_4x100():
    """Issue 23: a 4 × 100 sigmoid net with σ_w² = 1, σ_b² = 1: χ₁ ≈ 0.042 and the last ÷ first
    hidden layer's gradient norm χ₁^(−3/2) ≈ 116; q* and χ₁ checked against scipy quad."""
    chi = mf.chi_1("sigmoid", 1.0, 1.0)
    assert mf.q_star("sigmoid", 1.0, 1.0) == pytest.approx(quad_q_star("sigmoid", 1.0, 1.0))
    assert chi == pytest.approx(quad_chi_1("sigmoid", 1.0, 1.0), rel=1e-10)
    assert round(chi, 3) == 0.042
    assert round(mf.gradient_ratio(chi, 3)) == 116


@pytest.mark.parametrize("name", list(mf.ACTIVATIONS))
def test_critical_line_has_chi_1_one(name):
    for b in (0.0, 0.05, 1.0):
        w = float(mf.critical_sigma_w2(name, b))
        assert mf.chi_1(name, w, b) == pytest.approx(1.0, abs=1e-9), (name, b, w)


def test_arrays_broadcast_like_scalars():
    w, b = np.array([[0.5, 1.5, 3.0]]), np.array([[0.05], [0.5]])
    q = mf.q_star("tanh", w, b)
    assert q.shape == (2, 3)
    assert q[1, 2] == mf.q_star("tanh", 3.0, 0.5)
    assert mf.chi_1("tanh", w, b)[0, 1] == pytest.approx(mf.chi_1("tanh", 1.5, 0.05), rel=1e-14)
    assert mf.gaussian_mean(np.square, np.ones((2, 3))).shape == (2, 3)


def test_depth_scales_and_gradient_helpers():
    assert mf.depth_scale(math.exp(-0.5)) == pytest.approx(2.0)
    assert mf.depth_scale(math.e) == pytest.approx(-1.0)  # growth: negative
    assert mf.depth_scale(1.0) == math.inf
    assert mf.depth_scale(0.0) == 0.0
    np.testing.assert_allclose(mf.gradient_ratio([0.25, 4.0], 2), [4.0, 0.25])
    assert mf.gradient_slope(0.25) == pytest.approx(-math.log(2))
    m = mf.mean_field("tanh", 1.2, 0.2)
    assert m.c_star == 1.0 and m.chi_c == m.chi_1 and m.xi_c == m.xi_grad > 0


def test_correlation_map_fixed_point_and_slope():
    """c_map(1) = 1 at q* (the 1-D and 2-D rules agree), c* is a fixed point, and χ_c equals
    the map's numerical derivative there."""
    for name, w, b in [("tanh", 8.0, 0.5), ("sigmoid", 200.0, 1.0), ("softsign", 9.0, 0.1)]:
        m = mf.mean_field(name, w, b)
        assert mf.c_map(name, 1.0, w, b) == pytest.approx(1.0, abs=1e-13)
        assert 0 < m.c_star < 1 and m.chi_1 > 1
        assert mf.c_map(name, m.c_star, w, b) == pytest.approx(m.c_star, abs=1e-11)
        h = 1e-5
        slope = (mf.c_map(name, m.c_star + h, w, b) - mf.c_map(name, m.c_star - h, w, b)) / 2 / h
        assert m.chi_c == pytest.approx(slope, rel=1e-6)
        assert 0 < m.chi_c < 1 and m.xi_c > 0
    assert mf.c_star("tanh", 4.0, 0.0) == pytest.approx(0.0, abs=1e-10)  # odd φ, no bias


# ----------------------------------------------------------------------------- random nets

WIDTH, DEPTH, INPUTS = 2000, 24, 8
SETTLED = 10  # layers ≥ 10 count as settled at q*: |q¹ − q*| ρ^9 < 1e-3 q* (ρ ≤ 0.37 below)
C_SETTLED = 16  # c relaxes at χ_c ≤ 0.80 per layer: 0.8^15 |c* − 0| < 0.013, about 1 SE
# Each check allows 4 standard errors, the SE computed from the net's own per-layer values (see
# mean_and_se). Calibration, 20 other nets (seeds 100–119) × these 11 checks: the deviations'
# spread over nets was 0.5–1.1 × the mean in-test SE (the SE is not too small), the mean z
# within ±0.5 (no finite-width bias above half an SE) and max |z| = 3.0 over all 220 checks.
MAX_Z = 4.0
MC_CASES = [  # (activation, σ_w², σ_b², phase)
    ("tanh", 1.2, 0.2, "ordered"),
    ("tanh", 8.0, 0.5, "chaotic"),
    ("sigmoid", 1.0, 1.0, "ordered"),  # the issue's example
    ("sigmoid", 200.0, 1.0, "chaotic"),
]


@pytest.fixture(scope="module")
def standard_net():
    """One draw of standard normal kernels, biases, 8 Gaussian inputs and a top-layer δ; each
    case scales them (W = σ_w Z/√N, b = σ_b β), so the net's random numbers are drawn once."""
    rng = np.random.default_rng(2023)
    kernels = [rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) for _ in range(DEPTH)]
    biases = rng.standard_normal((DEPTH, WIDTH, 1), dtype=np.float32)
    inputs = rng.standard_normal((WIDTH, INPUTS), dtype=np.float32)
    top = rng.standard_normal((WIDTH, INPUTS), dtype=np.float32)
    return kernels, biases, inputs, top


def propagate(net, name: str, sigma_w2: float, sigma_b2: float) -> dict[str, np.ndarray]:
    """Per layer l = 1..DEPTH: q̂ (mean h² over units and inputs), ĉ and 1 − ĉ (mean over the
    28 input pairs), and ‖δ^l‖²/‖δ^(l+1)‖² (l < DEPTH), δ backpropagated through the same W."""
    kernels, biases, a, top = net
    act = mf.ACTIVATIONS[name]
    scale, bias = np.float32(math.sqrt(sigma_w2 / WIDTH)), np.float32(math.sqrt(sigma_b2))
    hs = []
    for kernel, b in zip(kernels, biases, strict=True):
        hs.append(scale * (kernel @ a) + bias * b)
        a = act.phi(hs[-1]).astype(np.float32)
    pairs = np.triu_indices(INPUTS, 1)
    units = [h / np.linalg.norm(h, axis=0) for h in hs]
    delta, ratio = top * act.dphi(hs[-1]), np.empty(DEPTH - 1)
    for layer in range(DEPTH - 2, -1, -1):
        back = scale * (kernels[layer + 1].T @ delta) * act.dphi(hs[layer])
        ratio[layer] = np.sum(back.astype(float) ** 2) / np.sum(delta.astype(float) ** 2)
        delta = (back / np.linalg.norm(back)).astype(np.float32)
    return {
        "q": np.array([np.mean(h.astype(float) ** 2) for h in hs]),
        "c": np.array([np.mean((u.T @ u)[pairs]) for u in units]),
        "1-c": np.array(
            [np.mean(np.sum((u[:, pairs[0]] - u[:, pairs[1]]) ** 2, axis=0)) / 2 for u in units]
        ),
        "ratio": ratio,
    }


@pytest.fixture(scope="module")
def runs(standard_net):
    return {case: propagate(standard_net, *case[:3]) for case in MC_CASES}


def mean_and_se(values: np.ndarray, rho: float = 0.0) -> tuple[float, float]:
    """The mean of per-layer values and its standard error: their spread over the layers
    ÷ √n, times √((1+ρ)/(1−ρ)) for layer-to-layer correlation ρ (an AR(1) process)."""
    se = values.std(ddof=1) / math.sqrt(len(values)) * math.sqrt((1 + rho) / (1 - rho))
    return float(values.mean()), se


@pytest.mark.parametrize("case", MC_CASES, ids=lambda c: f"{c[0]}-{c[3]}")
def test_random_net_variance_settles_at_q_star(runs, case):
    """Each layer's q̂ averages N = 2,000 units (relative SE √(2/N) ≈ 3 % per input); a
    deviation carries to the next layer with the q map's slope ρ = F′(q*), hence the AR(1)
    factor; the SE measured is 0.3–1.2 % of q*."""
    name, w, b, _ = case
    q = mf.q_star(name, w, b)
    rho = float(mf.q_map(name, q * 1.0001, w, b) - mf.q_map(name, q * 0.9999, w, b)) / (q * 2e-4)
    mean, se = mean_and_se(runs[case]["q"][SETTLED - 1 :], rho)
    assert abs(mean - q) < MAX_Z * se, (mean, q, se)
    assert se < 0.02 * q  # the check has teeth: 4 SE is below 8 % of q*


@pytest.mark.parametrize("case", MC_CASES, ids=lambda c: f"{c[0]}-{c[3]}")
def test_random_net_gradient_norm_shrinks_by_chi_1_per_layer(runs, case):
    """‖δ^l‖² ÷ ‖δ^(l+1)‖² has mean χ₁; layers use independent W, so the SE is the spread
    over the 14 settled layers ÷ √14 (≈ 0.5 % of χ₁ at N = 2,000 with 8 inputs)."""
    name, w, b, phase = case
    chi = mf.chi_1(name, w, b)
    assert (chi < 1) == (phase == "ordered")
    mean, se = mean_and_se(runs[case]["ratio"][SETTLED - 1 :])
    assert abs(mean - chi) < MAX_Z * se, (mean, chi, se)
    assert se < 0.02 * chi


@pytest.mark.parametrize("case", MC_CASES, ids=lambda c: f"{c[0]}-{c[3]}")
def test_random_net_correlation_reaches_c_star(runs, case):
    """Chaotic: the mean ĉ over layers 16–24 is c*, SE from the spread with the AR(1) factor
    for ρ = χ_c (the map's slope at c*). Ordered (c* = 1): 1 − ĉ shrinks by χ_c = χ₁ per layer;
    for tanh the mean log-decrement over the layers with 1e-5 < 1 − ĉ < 0.05 (linear regime,
    above float32 rounding) is ln χ₁; sigmoid's χ₁ = 0.04 takes 1 − ĉ below float32 rounding
    within ~6 layers, so there 1 − ĉ < 1e-5 is checked (c* < 1 would leave it ≥ 1e-2)."""
    name, w, b, phase = case
    m = mf.mean_field(name, w, b)
    run = runs[case]
    if phase == "chaotic":
        mean, se = mean_and_se(run["c"][C_SETTLED - 1 :], m.chi_c)
        assert abs(mean - m.c_star) < MAX_Z * se, (mean, m.c_star, se)
        assert se < 0.1 * (1 - m.c_star)
    elif name == "tanh":
        one_minus_c = run["1-c"][(run["1-c"] > 1e-5) & (run["1-c"] < 0.05)]
        mean, se = mean_and_se(np.diff(np.log(one_minus_c)))
        assert len(one_minus_c) >= 10
        assert abs(mean - math.log(m.chi_c)) < MAX_Z * se, (mean, math.log(m.chi_c), se)
    else:
        assert np.all(run["1-c"][SETTLED - 1 :] < 1e-5)
