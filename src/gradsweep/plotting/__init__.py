"""Every figure of gradsweep, from the aggregate tables (columns: docs/outputs.md).

- :mod:`~gradsweep.plotting.data`: the tidy data layer (runs/traces into long tables, configs,
  facets and pages; every setting a column of runs.parquet, never parsed from a run name);
- :mod:`~gradsweep.plotting.style`: the shared look and axes helpers;
- :mod:`~gradsweep.plotting.gradients`: per-experiment gradient norms per epoch and per step;
- :mod:`~gradsweep.plotting.curves`: per-experiment learning curves (validation accuracy and
  training loss per epoch) on the gradient figures' pages;
- :mod:`~gradsweep.plotting.sweep`: the sweep-wide figures (norms by activation × init,
  accuracy vs depth, ratio heatmap);
- the article's figures, one module each: :mod:`~gradsweep.plotting.activations` (the
  activation functions and their derivatives), :mod:`~gradsweep.plotting.layer_panels`
  (one_path's panel per hidden layer), :mod:`~gradsweep.plotting.speed_of_learning` (the
  gradient figures' panels, laid out for the article) and
  :mod:`~gradsweep.plotting.init_norms` (Nielsen's norms at initialisation); what they share
  (run order, titles, the published reference) is in :mod:`~gradsweep.plotting.article`;
- :mod:`~gradsweep.plotting.diagnostics`: the chain-rule diagnostics;
- :mod:`~gradsweep.plotting.remedies`: the remedies heatmap and Ioffe & Szegedy's Fig. 1
  (issue 15); the update-size figure lives with the gradient figures it mirrors;
- :mod:`~gradsweep.plotting.edge_of_chaos`: the trainability heat map over depth × σ_w² with
  the mean-field χ₁ = 1 line and 6 ξ_c curve, and the gradient slopes against ln χ₁ / 2
  (issue 23).

Figures aggregate seeds per config (a geometric-mean or mean line with a min–max band, or
dots) and stay within ``style.MAX_PANELS`` panels and ``style.MAX_HEIGHT_PX`` pixels per
image: an experiment with more configs is split into pages (``data.pages``).
"""

import importlib
from typing import Any

# Where each public name lives. Imported on first use (PEP 562), so the workflow can import
# gradsweep.plotting.data at parse time without loading matplotlib and seaborn.
_HOMES = {
    "plot_activations": "activations",
    "curve_bands": "curves",
    "plot_learning_curves": "curves",
    "init_norm_table": "init_norms",
    "plot_init_norms": "init_norms",
    "layer_order_fraction": "layer_panels",
    "plot_layer_panels": "layer_panels",
    "plot_speed_of_learning": "speed_of_learning",
    "page_suffixes": "data",
    "pages": "data",
    "read_traces": "data",
    "DIAGNOSTIC_COLUMNS": "diagnostics",
    "diagnostics_table": "diagnostics",
    "pick_configs": "diagnostics",
    "plot_diagnostics": "diagnostics",
    "plot_gradient_norms": "gradients",
    "plot_step_traces": "gradients",
    "plot_update_sizes": "gradients",
    "percentile_table": "remedies",
    "plot_bn_distribution": "remedies",
    "plot_remedies_heatmap": "remedies",
    "smooth_steps": "gradients",
    "plot_accuracy_vs_depth": "sweep",
    "plot_activation_init_grid": "sweep",
    "plot_ratio_heatmap": "sweep",
    "plot_slopes": "edge_of_chaos",
    "plot_trainability": "edge_of_chaos",
}
_MODULES = {
    "activations",
    "article",
    "curves",
    "data",
    "diagnostics",
    "edge_of_chaos",
    "gradients",
    "init_norms",
    "layer_panels",
    "remedies",
    "speed_of_learning",
    "style",
    "sweep",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"gradsweep.plotting.{name}")
    if name in _HOMES:
        return getattr(importlib.import_module(f"gradsweep.plotting.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'gradsweep.plotting' has no attribute {name!r}")


__all__ = [  # noqa: F822  (resolved by __getattr__)
    "DIAGNOSTIC_COLUMNS",
    "curve_bands",
    "diagnostics_table",
    "init_norm_table",
    "layer_order_fraction",
    "page_suffixes",
    "pages",
    "percentile_table",
    "pick_configs",
    "plot_bn_distribution",
    "plot_accuracy_vs_depth",
    "plot_activation_init_grid",
    "plot_activations",
    "plot_diagnostics",
    "plot_gradient_norms",
    "plot_init_norms",
    "plot_layer_panels",
    "plot_learning_curves",
    "plot_ratio_heatmap",
    "plot_remedies_heatmap",
    "plot_slopes",
    "plot_speed_of_learning",
    "plot_step_traces",
    "plot_trainability",
    "plot_update_sizes",
    "read_traces",
    "smooth_steps",
]
