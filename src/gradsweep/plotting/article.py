"""What the article's figures share (activations, layer_panels, speed_of_learning,
init_norms): the order their runs are drawn in, their titles, the x axis of a trace and the
published reference they compare with (input columns: docs/outputs.md).

Every article figure draws on a standalone Figure and leaves nothing open. Functions that
show measured data return the numbers they drew as a small DataFrame, for the rule's log and
for tests.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

from gradsweep import facets as F
from gradsweep.facets import ACTIVATION_ORDER
from gradsweep.plotting.style import thousands, with_datasets


def by_activation(runs: pd.DataFrame, experiment: str | None) -> pd.DataFrame:
    """An experiment's runs, sigmoid-like activations first, then by depth, widths and seed."""
    if experiment is not None and "experiment" in runs.columns:
        runs = runs[runs["experiment"] == experiment]
    rank = {a: i for i, a in enumerate(ACTIVATION_ORDER)}
    order = runs.assign(
        _act=runs["activation"].map(lambda a: rank.get(str(a), len(rank))),
        _widths=runs["widths"].map(F.width_sort_key),  # 30-30 before 100-100
    )
    keys = ["_act", "activation", "depth", "_widths", "init", "seed", "run"]
    order = order.sort_values([k for k in keys if k in order], kind="stable")
    return order.drop(columns=["_act", "_widths"])


def figure_title(kind: str, experiment: str | None, runs: pd.DataFrame) -> str:
    """``kind — experiment NAME (datasets)``."""
    return with_datasets(f"{kind} — experiment {experiment or 'all runs'}", runs)


def reference_source(reference: Mapping[str, Any] | None, width: int = 34) -> str:
    """The reference block's ``source``, wrapped for a legend."""
    return textwrap.fill(str((reference or {}).get("source", "reference")), width)


def trace_x_axis(ax: Axes, source: str, max_x: float) -> None:
    """Steps from 0 in thousands, or epochs with a margin; integer ticks either way."""
    if source == "step":
        ax.set_xlim(0, max_x * 1.02)
        ax.xaxis.set_major_formatter(FuncFormatter(thousands))
    else:
        ax.set_xlim(-0.02 * max_x - 0.3, max_x * 1.02 + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
