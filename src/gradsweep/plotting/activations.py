"""The article's first figure: the activation functions behind the chain rule and their
derivatives, the factors backprop multiplies in at every layer (no data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradsweep.plotting.style import save, style, suptitle

FUNCTION_COLOR = "#1b4f8a"
DERIVATIVE_COLOR = "#d95f02"
SOFTPLUS_COLOR = "#66a61e"


def _sigmoid_panel(ax: Axes, z: np.ndarray, sig: np.ndarray) -> None:
    ax.plot(z, sig, color=FUNCTION_COLOR, lw=2, label="σ(z) = 1 / (1 + e⁻ᶻ)")
    ax.plot(z, sig * (1 - sig), color=DERIVATIVE_COLOR, lw=2, ls="--", label="σ′(z) = σ(1 − σ)")
    ax.plot([0], [0.25], "o", color=DERIVATIVE_COLOR, ms=6, zorder=5)
    ax.annotate(
        "max σ′ = σ′(0) = ¼",
        (0, 0.25),
        xytext=(14, 18),
        textcoords="offset points",
        fontsize=8,
        arrowprops={"arrowstyle": "-", "color": "0.3", "lw": 0.8},
    )
    ax.set_title("(a) sigmoid and its derivative")
    ax.set_ylim(-0.05, 1.12)


def _relu_panel(ax: Axes, z: np.ndarray, sig: np.ndarray) -> None:
    relu = np.maximum(z, 0)
    softplus = np.log1p(np.exp(z))
    ax.plot(z, relu, color=FUNCTION_COLOR, lw=2, label="ReLU(z) = max(0, z)")
    ax.plot(z[z < 0], np.zeros((z < 0).sum()), color=DERIVATIVE_COLOR, lw=2, ls="--")
    ax.plot(
        z[z > 0],
        np.ones((z > 0).sum()),
        color=DERIVATIVE_COLOR,
        lw=2,
        ls="--",
        label="ReLU′(z) = 0 or 1",
    )
    ax.plot(z, softplus, color=SOFTPLUS_COLOR, lw=1.6, label="softplus(z) = ln(1 + eᶻ)")
    ax.plot(z, sig, color=SOFTPLUS_COLOR, lw=1.4, ls=":", label="softplus′(z) = σ(z)")
    ax.set_title("(b) ReLU, softplus and their derivatives")
    ax.set_ylim(-0.3, 6.2)


def _tanh_panel(ax: Axes, z: np.ndarray) -> None:
    ax.plot(z, np.tanh(z), color=FUNCTION_COLOR, lw=2, label="tanh(z)")
    ax.plot(
        z,
        1 - np.tanh(z) ** 2,
        color=DERIVATIVE_COLOR,
        lw=2,
        ls="--",
        label="tanh′(z) = 1 − tanh²",
    )
    ax.plot([0], [1], "o", color=DERIVATIVE_COLOR, ms=6, zorder=5)
    ax.set_title("(c) tanh and its derivative (max 1 at z = 0)")
    ax.set_ylim(-1.1, 1.25)


def _shade_saturated(ax: Axes, label_y: float) -> None:
    """The saturated regions the diagnostics count, |z| > 2, labelled where no curve runs."""
    for lo, hi in ((-6, -2), (2, 6)):
        ax.axvspan(lo, hi, color="0.5", alpha=0.1, lw=0)
    ax.text(
        4,
        label_y,
        "saturated\n|z| > 2\n(shaded)",
        transform=ax.get_xaxis_transform(),
        ha="center",
        va="center",
        fontsize=7.5,
        color="0.35",
    )


def _derivative_panel(ax: Axes, z: np.ndarray) -> None:
    sig = 1 / (1 + np.exp(-z))
    curves = [
        ("σ′ (sigmoid), ≤ ¼", sig * (1 - sig), "#1b4f8a", "-"),
        ("tanh′, ≤ 1", 1 - np.tanh(z) ** 2, "#7570b3", "-"),
        ("softplus′ = σ, < 1", sig, SOFTPLUS_COLOR, (0, (4, 2))),
        ("ReLU′ ∈ {0, 1}", (z > 0).astype(float), "#d95f02", "-"),
    ]
    for label, y, color, ls in curves:
        ax.plot(z, y, color=color, ls=ls, lw=1.8, label=label)
    ax.axhline(0.25, color="0.4", lw=0.8, ls=":")
    ax.annotate(
        "¼ · ¼ · ¼ · ¼ ≈ 0.004:\nfour sigmoid layers scale\nthe gradient by at most this",
        (-5.8, 0.25),
        xytext=(0, 4),
        textcoords="offset points",
        va="bottom",
        fontsize=7.5,
        color="0.25",
    )
    ax.set_title("(d) the derivatives backprop multiplies, one per layer")
    ax.set_ylim(-0.05, 1.12)
    ax.legend(loc="center right", fontsize=7.5, frameon=True, framealpha=0.9)


def plot_activations(out: str | Path) -> None:
    """σ and σ′ (maximum ¼ at z = 0), ReLU and softplus with derivatives, tanh, and all the
    derivatives on one axis: the factors the chain rule multiplies in at every layer."""
    z = np.linspace(-6, 6, 1201)
    sig = 1 / (1 + np.exp(-z))
    with style():
        fig = Figure(figsize=(10.5, 7.2), layout="constrained")
        (a, b), (c, d) = fig.subplots(2, 2)
        _sigmoid_panel(a, z, sig)
        _relu_panel(b, z, sig)
        _tanh_panel(c, z)
        _shade_saturated(a, 0.45)
        _shade_saturated(c, 0.28)
        for ax in (a, b, c):
            ax.legend(loc="upper left", fontsize=8, frameon=True, framealpha=0.9)
        _derivative_panel(d, z)
        for ax in (a, b, c, d):
            ax.set_xlim(-6, 6)
            ax.axvline(0, color="0.6", lw=0.6)
            ax.set_xlabel("z (weighted input of a unit)")
        suptitle(fig, "The activation functions behind the chain rule, and their derivatives")
        save(fig, out)
