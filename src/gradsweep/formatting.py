"""How numbers read in tables and figure labels: one formatter per kind of value."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING = "—"


def format_ratio(x: Any) -> str:
    """Three significant digits; scientific (``1.23e-5``) when < 0.01 or >= 1000."""
    if x is None or pd.isna(x):
        return MISSING
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    r = float(f"{x:.3g}")  # round first so 999.6 -> 1.00e3 and 9.996 -> 10.0
    if abs(r) < 0.01 or abs(r) >= 1000:
        mantissa, exponent = f"{r:.2e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    decimals = max(0, 2 - math.floor(math.log10(abs(r))))
    return f"{r:.{decimals}f}"


def format_percent(x: Any) -> str:
    """Fraction in [0, 1] -> percentage with two decimals (``0.9712`` -> ``97.12``)."""
    if x is None or pd.isna(x) or math.isinf(float(x)):
        return MISSING
    return f"{100 * float(x):.2f}"


def format_int(x: Any) -> str:
    if x is None or pd.isna(x):
        return MISSING
    return str(int(x))


def format_escape(x: Any) -> str:
    """Escape epoch: the epoch, or ``never`` (NaN); missing column: —."""
    if x is None:
        return MISSING
    return "never" if pd.isna(x) else str(int(x))


def format_text(x: Any) -> str:
    if x is None or (not isinstance(x, str) and pd.isna(x)):
        return MISSING
    return str(x)


def format_number(x: Any) -> str:
    if x is None or pd.isna(x):
        return MISSING
    return f"{float(x):g}"


def fixed(x: Any, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals (— where missing or not finite)."""
    return MISSING if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def norms_text(values: Sequence[float]) -> str:
    """Gradient norms per layer: ``0.00312 / 0.0171 / 0.0702``."""
    return " / ".join(f"{v:.3g}" for v in values) if len(values) else MISSING


def step_text(x: float) -> str:
    """An SGD step count with thousands separators, or ``never``."""
    return "never" if x is None or not np.isfinite(x) else f"{int(x):,}"


def duration_text(seconds: float, tenths: bool = False) -> str:
    """Wall or CPU time to the second: ``18 s``, ``1 min 12 s``, ``2 h 5 min``; with
    ``tenths``, below a minute to the tenth: ``0.4 s``, ``18.5 s``; — where missing."""
    if seconds is None or not np.isfinite(seconds):
        return MISSING
    if tenths and round(seconds, 1) < 60:
        return f"{max(0.0, seconds):.1f} s"
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def megabytes_text(mb: Any) -> str:
    """A memory size in MB: ``934 MB``, ``1,520 MB``; — where not measured."""
    return MISSING if mb is None or not np.isfinite(mb) else f"{round(mb):,} MB"


def interval_cell(mean: Any, lo: Any, hi: Any, fmt: Callable[[Any], str]) -> str:
    """``95.87 [95.21, 96.53]``; a single value says it has no interval."""
    if mean is None or pd.isna(mean):
        return MISSING
    if lo is None or pd.isna(lo) or pd.isna(hi):
        return fmt(mean)  # n = 1: the section intro and "published is" say so
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def summary_cell(
    mean: Any, lo: Any, hi: Any, low: Any, high: Any, fmt: Callable[[Any], str]
) -> str:
    """A config's seeds in one cell (gradsweep.stats): ``95.87 [95.21, 96.53]`` (mean and
    interval, n ≥ 3), ``95.87 (95.40–96.34)`` (mean and min–max: two seeds, no interval) or
    ``95.87`` (one seed, or seeds that agree)."""
    if mean is None or pd.isna(mean):
        return MISSING
    if not (lo is None or pd.isna(lo) or hi is None or pd.isna(hi)):
        return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"
    if low is None or high is None or pd.isna(low) or pd.isna(high) or fmt(low) == fmt(high):
        return fmt(mean)
    return f"{fmt(mean)} ({fmt(low)}–{fmt(high)})"


def fraction_cell(k: Any, n: Any, lo: Any = None, hi: Any = None) -> str:
    """``1/5 (4–62 %)``: k of n and the fraction's interval in % (none for n = 1)."""
    if k is None or n is None or pd.isna(k) or pd.isna(n):
        return MISSING
    text = f"{int(k)}/{int(n)}"
    if int(n) > 1 and lo is not None and hi is not None and pd.notna(lo) and pd.notna(hi):
        text += f" ({100 * float(lo):.0f}–{100 * float(hi):.0f} %)"
    return text


def spread_cell(median: Any, lo: Any, hi: Any, fmt: Callable[[Any], str]) -> str:
    """``96.10 (95.40–96.53)``: median and min–max."""
    if median is None or pd.isna(median):
        return MISSING
    if lo == hi:
        return fmt(median)
    return f"{fmt(median)} ({fmt(lo)}–{fmt(hi)})"
