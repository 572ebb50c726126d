"""Every figure of gradsweep, from the aggregate tables (columns: docs/outputs.md).

- :mod:`~gradsweep.plotting.data`: the tidy data layer (runs/traces into long tables, configs,
  facets and pages; every setting a column of runs.parquet, never parsed from a run name);
- :mod:`~gradsweep.plotting.style`: the shared look and axes helpers;
- :mod:`~gradsweep.plotting.gradients`: per-experiment gradient norms per epoch and per step;
- :mod:`~gradsweep.plotting.sweep`: the sweep-wide figures (norms by activation × init,
  accuracy vs depth, ratio heatmap);
- :mod:`~gradsweep.plotting.article`: the article's figures (activations, one_path, speed of
  learning, Nielsen's norms at initialisation);
- :mod:`~gradsweep.plotting.diagnostics`: the chain-rule diagnostics.

Figures aggregate seeds per config (a geometric-mean or mean line with a min–max band, or
dots) and stay within ``style.MAX_PANELS`` panels and ``style.MAX_HEIGHT_PX`` pixels per
image: an experiment with more configs is split into pages (``data.pages``).
"""

from gradsweep.plotting.article import (
    init_norm_table,
    layer_order_fraction,
    plot_activations,
    plot_init_norms,
    plot_layer_panels,
    plot_speed_of_learning,
)
from gradsweep.plotting.data import page_suffixes, pages, read_traces, settings_frame
from gradsweep.plotting.diagnostics import (
    DIAGNOSTIC_COLUMNS,
    diagnostics_table,
    pick_configs,
    plot_diagnostics,
)
from gradsweep.plotting.gradients import plot_gradient_norms, plot_step_traces, smooth_steps
from gradsweep.plotting.sweep import (
    plot_accuracy_vs_depth,
    plot_activation_init_grid,
    plot_ratio_heatmap,
)

__all__ = [
    "DIAGNOSTIC_COLUMNS",
    "diagnostics_table",
    "init_norm_table",
    "layer_order_fraction",
    "page_suffixes",
    "pages",
    "pick_configs",
    "plot_accuracy_vs_depth",
    "plot_activation_init_grid",
    "plot_activations",
    "plot_diagnostics",
    "plot_gradient_norms",
    "plot_init_norms",
    "plot_layer_panels",
    "plot_ratio_heatmap",
    "plot_speed_of_learning",
    "plot_step_traces",
    "read_traces",
    "settings_frame",
    "smooth_steps",
]
