"""A run's settings and identity: the one declaration every table, figure and hash reads.

A *run* is one net trained once; a *config* is the runs that differ only in their seed. Every
setting of a run is a column of runs.parquet (docs/outputs.md), declared once here, in the
order figures facet by them (:data:`SETTINGS`): the Parquet types, the facet axes, their names
in figure titles and in table headers all derive from it. Nothing is parsed back out of a run
name.

Identity is one hash (:func:`digest`): a run's cache key is the digest of its whole config
(gradsweep.batches), a config's id the digest of its settings (:func:`config_id`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from gradsweep.config import OPTIONAL_DEFAULTS, REMEDY_DEFAULTS, setting


@dataclass(frozen=True)
class Setting:
    """One run setting: its runs.parquet column and how people read it.

    ``axis``: the name figures facet by (``widths`` facets as the per-layer ``width``);
    ``label``: the word before a value in figure titles ("" for self-explaining values such as
    ``sigmoid``); ``header``: the table column heading when it varies within an experiment
    (None: it is always a column of its own, see gradsweep.table); ``derived``: runs.parquet
    holds the value the run had, which follows from the settings before it where the config
    leaves this one unset (``weight_variance``: the init's σ_w², gradsweep.theory), so a table
    shows it only where it varies beyond them (figures facet so for every axis).
    """

    name: str
    type: pa.DataType
    label: str
    header: str | None
    axis: str = ""
    derived: bool = False

    @property
    def facet(self) -> str:
        return self.axis or self.name


# In facet order: the first two that vary are a figure's panel columns and rows, the others
# split an experiment's configs into pages (outermost = last).
SETTINGS: tuple[Setting, ...] = (
    Setting("activation", pa.string(), "", None),
    Setting("depth", pa.int64(), "hidden layers", None),
    Setting("init", pa.string(), "", None),
    Setting("optimizer", pa.string(), "", "optimizer"),
    Setting("normalization", pa.string(), "", "normalization"),
    Setting("residual", pa.bool_(), "", "residual"),
    Setting("nesterov", pa.bool_(), "", "nesterov"),
    Setting("widths", pa.string(), "width", None, axis="width"),
    Setting("learning_rate", pa.float64(), "η", "learning rate"),
    Setting("batch_size", pa.int64(), "batch", "batch size"),
    Setting("epochs", pa.int64(), "epochs", None),
    Setting("l2", pa.float64(), "λ", "L2 λ"),
    Setting("loss", pa.string(), "loss", "loss"),
    Setting("bias_init", pa.string(), "bias init", "bias init"),
    Setting("weight_scale", pa.float64(), "weight scale", "weight scale"),
    Setting("weight_variance", pa.float64(), "σ_w²", "σ_w²", derived=True),
    Setting("bias_variance", pa.float64(), "σ_b²", "σ_b²", derived=True),
    Setting("train_subset", pa.int64(), "train subset", "train subset"),
    Setting("probe_size", pa.int64(), "probe size", "probe size"),
    Setting("trace_every", pa.int64(), "trace every", "trace every"),
    Setting("dataset", pa.string(), "", "dataset"),
)
SETTING_NAMES: tuple[str, ...] = tuple(s.name for s in SETTINGS)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
FACET_AXES: tuple[str, ...] = tuple(s.facet for s in SETTINGS)
AXIS_NAMES: dict[str, str] = {s.facet: s.label for s in SETTINGS}
# settings a table shows as extra columns when they vary between an experiment's runs
VARYING: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.header is not None)
REMEDIES: tuple[str, ...] = tuple(REMEDY_DEFAULTS)

# A config's columns in runs.parquet: who it is, then every setting; the seed follows.
IDENTITY_FIELDS = [("run_id", pa.string()), ("experiment", pa.string()), ("run", pa.string())]
SETTING_FIELDS = [
    ("config_id", pa.string()),
    *((s.name, s.type) for s in SETTINGS),
    ("seed", pa.int64()),
]


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns that identify a config: the experiment and every setting but the seed."""
    return ["experiment", *[c for c in SETTING_NAMES if c in runs.columns]]


def digest(obj: Any) -> str:
    """The identity hash of a JSON-able object (sha256 of its key-sorted JSON, in hex)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def widths_string(widths: Sequence[int]) -> str:
    """runs.parquet's ``widths`` column: ``[500, 300, 150, 50]`` -> ``"500-300-150-50"``."""
    return "-".join(map(str, widths))


def widths_list(widths: object) -> list[int]:
    """The inverse of :func:`widths_string` (``[]`` for a missing value)."""
    if not isinstance(widths, str):
        return []
    return [int(p) for p in widths.split("-") if p.isdigit()]


def run_settings(experiment: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment and every setting of a run but its seed, as columns; an optional setting
    the run's config leaves out has its default (config.setting): ``weight_variance`` and
    ``bias_variance`` None, which runs.parquet fills in with the init's own (gradsweep.theory)."""
    derived = {"depth": len(cfg["widths"]), "widths": widths_string(cfg["widths"])}
    return {"experiment": experiment} | {
        k: setting(cfg, k) if k in OPTIONAL_DEFAULTS else derived.get(k, cfg.get(k))
        for k in SETTING_NAMES
    }


def config_id(settings: Mapping[str, Any]) -> str:
    """``<experiment>/d<depth>-w<widths>-<activation>-<init>-<8 hex digits>``: readable, and
    unique per config (the digest covers every setting but the seed). An optional setting at
    its default is left out of the digest, so a config keeps the id it had before it existed."""
    hashed = {
        k: v for k, v in settings.items() if not (k in OPTIONAL_DEFAULTS and _is_default(k, v))
    }
    return (
        f"{settings['experiment']}/d{settings['depth']}-w{settings['widths']}-"
        f"{settings['activation']}-{settings['init']}-{digest(hashed)[:8]}"
    )


def _is_default(key: str, value: Any) -> bool:
    """An optional value equal to its default (NaN/None, as read back from Parquet, too)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    if isinstance(value, np.bool_ | np.str_):
        value = value.item()
    return bool(value == OPTIONAL_DEFAULTS[key])


def settings_frame(run_configs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Run configs as expanded from the config file (gradsweep.config.expand_runs) in
    runs.parquet's columns: lets the workflow lay out figure pages before any run exists."""
    rows = []
    for cfg in run_configs:
        settings = run_settings(cfg["experiment"], cfg)
        rows.append(
            {
                "run_id": f"{cfg['experiment']}/{cfg['run']}",
                "config_id": config_id(settings),
                **settings,
                "seed": cfg["seed"],
            }
        )
    return pd.DataFrame(rows)
