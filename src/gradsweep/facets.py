"""How an experiment's runs group into configs, which settings tell the configs apart, and how
those settings read in titles and labels (figures and tables alike).

A *config* is the runs that differ only in their seed (column ``config_id``); its settings are
columns of runs.parquet, declared in :mod:`gradsweep.settings`. No drawing here: the workflow
lays out figure pages with these functions when it is parsed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from gradsweep.settings import AXIS_NAMES, FACET_AXES, widths_list

# Display order of categorical settings (anything else follows, sorted).
ACTIVATION_ORDER = [
    "sigmoid",
    "tanh",
    "softsign",
    "softplus",
    "relu",
    "leaky_relu",
    "elu",
    "linear",
]


INIT_ORDER = [
    "normal",
    "standard_uniform",
    "scaled_normal",
    "scaled_normal_relu",
    "lecun_normal",
    "lecun_uniform",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
]


# How the remedy axes' values read in titles and labels (axis_text).
REMEDY_TEXT = {
    ("normalization", "none"): "no norm.",
    ("normalization", "batch_norm"): "batch norm",
    ("normalization", "layer_norm"): "layer norm",
    ("residual", True): "residual",
    ("residual", False): "no shortcut",
    ("nesterov", True): "Nesterov",
    ("nesterov", False): "no Nesterov",
    ("optimizer", "sgd"): "SGD",
    ("optimizer", "momentum"): "momentum",
    ("optimizer", "adam"): "Adam",
}


OPTIMIZER_ORDER = ["sgd", "momentum", "adam"]


NORMALIZATION_ORDER = ["none", "batch_norm", "layer_norm"]


def ordered(values: object, preferred: list[str]) -> list[str]:
    """Unique values as strings: the preferred ones in that order, then the rest sorted."""
    present = [str(v) for v in pd.unique(pd.Series(values).dropna())]
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def widths_label(widths: object) -> str:
    """``"100-100-100"`` -> ``"3 × 100"``; mixed widths are kept as ``500-300-150-50``."""
    w = widths_list(widths)
    if not w:
        return "?"
    if len(w) > 1 and len(set(w)) == 1:
        return f"{len(w)} × {w[0]}"
    return "-".join(map(str, w))


def unit_width(widths: object) -> str:
    """Per-layer width when all hidden layers are equally wide, else the widths pattern."""
    w = widths_list(widths)
    return str(w[0]) if w and len(set(w)) == 1 else "-".join(map(str, w))


def width_sort_key(widths: object) -> tuple[int, ...]:
    """Sort ``30-30`` before ``100-100``."""
    return tuple(widths_list(widths))


def with_axes(runs: pd.DataFrame) -> pd.DataFrame:
    """runs plus the derived ``width`` axis (one width per layer, or the pattern)."""
    return runs.assign(width=runs["widths"].map(unit_width)) if "widths" in runs else runs


def varying_axes(runs: pd.DataFrame) -> list[str]:
    """The FACET_AXES that tell this experiment's configs apart, in FACET_AXES order; an axis
    that varies only together with earlier ones (e.g. epochs with depth) is left out."""
    df = with_axes(runs)
    chosen: list[str] = []
    groups = 1
    for axis in FACET_AXES:
        if axis not in df:
            continue
        n = df.groupby([*chosen, axis], dropna=False).ngroups
        if n > groups:
            chosen.append(axis)
            groups = n
    return chosen


def axis_order(axis: str, values: Iterable[Any]) -> list[Any]:
    values = list(pd.unique(pd.Series(list(values))))
    if axis == "activation":
        return ordered(values, ACTIVATION_ORDER)
    if axis == "init":
        return ordered(values, INIT_ORDER)
    if axis == "width":
        return sorted(values, key=lambda v: widths_list(str(v)))
    if axis == "optimizer":
        return ordered(values, OPTIMIZER_ORDER)
    if axis == "normalization":
        return ordered(values, NORMALIZATION_ORDER)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def axis_text(axis: str, value: Any) -> str:
    if isinstance(value, np.bool_ | np.str_):
        value = value.item()
    if (axis, value) in REMEDY_TEXT:
        return REMEDY_TEXT[(axis, value)]
    if isinstance(value, float) and value.is_integer() and axis != "learning_rate":
        value = int(value)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    name = AXIS_NAMES.get(axis, axis.replace("_", " "))
    if axis == "depth":
        return f"{text} hidden layer{'s' if text != '1' else ''}"
    return f"{name} {text}" if name else text


# axes named in a remedies row label whenever they differ between the experiment's configs
LABEL_AXES = ["activation", "init", "optimizer", "normalization", "residual", "nesterov"]


def config_labels(configs: pd.DataFrame) -> list[str]:
    """Row label per config: the remedy-relevant settings that differ between the configs
    (activation, init, optimizer, normalization, residual, nesterov), then any other axis
    that varies (e.g. depth)."""
    df = with_axes(configs)
    axes = [a for a in LABEL_AXES if a in df and df[a].nunique(dropna=False) > 1]
    axes += [a for a in varying_axes(df) if a not in axes and a not in ("learning_rate",)]
    if "learning_rate" in df and df["learning_rate"].nunique(dropna=False) > 1:
        axes.append("learning_rate")
    labels = []
    for _, row in df.iterrows():
        parts = [axis_text(a, row[a]) for a in axes] or [widths_label(row.get("widths"))]
        labels.append(" · ".join(parts))
    return labels


def configs_of(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config of ``runs`` (its first run), with n_seeds, sorted by the axes."""
    df = with_axes(runs)
    n = df.groupby("config_id")["run_id"].size().rename("n_seeds")
    first = df.drop_duplicates("config_id").merge(n, left_on="config_id", right_index=True)
    keys = []
    for axis in varying_axes(df):
        order = {v: i for i, v in enumerate(axis_order(axis, first[axis]))}
        keys.append(first[axis].map(order).rename(f"_{axis}"))
    if keys:
        first = first.assign(**{k.name: k for k in keys}).sort_values([k.name for k in keys])
        first = first.drop(columns=[k.name for k in keys])
    return first.reset_index(drop=True)
