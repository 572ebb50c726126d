"""A synthetic many-run aggregate: results/{runs,traces,metrics}.parquet as docs/outputs.md
describes them, for figure tests and benchmarks/bench_figures.py (no TensorFlow needed).

Per-run traces and metrics are generated, then summarised by the real
``gradsweep.aggregate.run_summary``, so runs.parquet has exactly the aggregate's columns.
Sigmoid-like nets start vanishing (shrink factor per layer) and some seeds never learn.

The remedy axes of issue 15 (``remedies={"optimizer": [...], ...}``) are generated too: the
traces carry ``update_norm`` / ``relative_update`` (step and probe rows) and the percentiles
``z_p15/50/85``, whether or not ``gradsweep.io.TRACES_SCHEMA`` has them yet (the trainer
side adds them). Adam evens out the relative updates across layers, batch norm shrinks the
gradient ratio and keeps the percentiles still, residual shortcuts halve the shrink factor.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gradsweep.aggregate import RUNS_SCHEMA, run_summary
from gradsweep.config import REMEDY_DEFAULTS
from gradsweep.io import DIAGNOSTICS, METRICS_SCHEMA, TRACES_SCHEMA

# The traces' columns per the issue-15 contract, whether or not io.TRACES_SCHEMA has them yet.
NEW_COLUMNS = ("update_norm", "relative_update", "z_p15", "z_p50", "z_p85")
SCHEMA = TRACES_SCHEMA
for _name in NEW_COLUMNS:
    if _name not in SCHEMA.names:
        SCHEMA = SCHEMA.append(pa.field(_name, pa.float64()))
DIAG_VALUES = {"act_deriv": 0.2, "weight_norm": 3.0, "chain_factor": 0.6, "saturated_frac": 0.3,
               "dead_frac": 0.0, "same_sign_frac": 0.5}  # fmt: skip

SHRINK = {"sigmoid": 4.0, "softsign": 2.0, "tanh": 1.5, "relu": 1.0, "elu": 1.1}
TRAINING = {
    "epochs": 6,
    "learning_rate": 0.1,
    "batch_size": 10,
    "l2": 5.0,
    "loss": "sigmoid_cross_entropy",
    "bias_init": "normal",
    "weight_scale": 1.0,
    "train_subset": None,
    "probe_size": 500,
    "trace_every": 1,
}


def synthetic_aggregate(
    out: str | Path,
    *,
    depth=(1, 3, 6),
    width=(16, 64),
    activation=("sigmoid", "tanh", "relu", "elu"),
    init=("scaled_normal", "he_normal", "glorot_uniform"),
    seeds=(0, 1),
    steps_per_epoch: int = 20,
    experiment: str = "grid",
    rng_seed: int = 0,
    remedies: Mapping[str, Sequence[Any]] | None = None,
    epochs: int | None = None,
    dataset: str = "digits",
) -> dict[str, Path]:
    """Write runs/traces/metrics.parquet into ``out``; return their paths. ``remedies`` adds
    remedy axes (e.g. ``{"optimizer": ["sgd", "adam"], "normalization": ["none",
    "batch_norm"]}``) to the grid."""
    rng = np.random.default_rng(rng_seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = epochs or TRAINING["epochs"]
    remedy_axes = dict(remedies or {})
    rows, trace_parts, metric_parts = [], [], []
    remedy_points = [
        dict(zip(remedy_axes, values, strict=True))
        for values in itertools.product(*remedy_axes.values())
    ]
    grid = itertools.product(depth, width, activation, init, seeds, remedy_points)
    for d, w, act, ini, seed, remedy in grid:
        remedy = {k: v for k, v in remedy.items() if v != REMEDY_DEFAULTS[k]}
        widths = [w] * d
        run = f"d{d}-w{w}-{act}-{ini}-s{seed}" + "".join(f"-{k}{v}" for k, v in remedy.items())
        run_id = f"{experiment}/{run}"
        bn = remedy.get("normalization", "none") != "none"
        adam = remedy.get("optimizer") == "adam"
        k = SHRINK[act] * (1.3 if ini == "scaled_normal" else 1.0)
        if bn:
            k = 1 + 0.3 * (k - 1)
        if remedy.get("residual"):
            k = 1 + 0.5 * (k - 1)
        stuck = act == "sigmoid" and d >= 6 and seed % 3 == 1 and not (bn or adam)
        escape = rng.integers(1, epochs) if k > 1.5 else 0
        probe = []
        for e in range(epochs + 1):
            k_e = k if (stuck or e < escape) else 1 + 0.1 * (k - 1)
            for layer in range(1, d + 2):
                hidden = layer <= d
                g = 0.05 * k_e ** -(d - min(layer, d)) * rng.lognormal(0, 0.1)
                rel = np.nan if e == 0 else (1.0 if adam else k_e ** -(d - min(layer, d)))
                diag = {c: DIAG_VALUES.get(c, np.nan) if hidden else np.nan for c in DIAGNOSTICS}
                drift = 0.0 if bn else 0.6 * e / epochs * (1 if layer % 2 else -1)
                pct = (-1.0 + drift, drift, 1.0 + drift) if hidden else (np.nan,) * 3
                diag.update(z_p15=pct[0], z_p50=pct[1], z_p85=pct[2])
                params = [("bias", 1.0), ("kernel", 3.0)] + (
                    [("scale", 0.5)] if bn and hidden else []
                )
                for param, scale in params:
                    probe.append({"run_id": run_id, "epoch": e, "step": e * steps_per_epoch,
                                  "layer": layer, "param": param, "grad_norm": g * scale,
                                  "source": "probe", "update_norm": 0.3 * rel * scale,
                                  "relative_update": 0.01 * rel, **diag})  # fmt: skip
        steps = []
        for s in range(1, epochs * steps_per_epoch + 1):
            e = (s - 1) // steps_per_epoch + 1
            k_e = k if (stuck or e < escape) else 1 + 0.1 * (k - 1)
            for layer in range(1, d + 2):
                shrink = k_e ** -(d - min(layer, d))
                rel = 1e-3 * (1.0 if adam else shrink) * rng.lognormal(0, 0.3)
                for param in ("bias", "kernel"):
                    steps.append({"run_id": run_id, "epoch": e, "step": s, "layer": layer,
                                  "param": param, "grad_norm": 0.05 * rng.lognormal(0, 0.5),
                                  "source": "step", "update_norm": 30 * rel,
                                  "relative_update": rel})  # fmt: skip
        tr = pd.DataFrame(probe + steps).reindex(columns=SCHEMA.names)
        acc_end = 0.1 if stuck else 0.9 - 0.01 * d + rng.normal(0, 0.01) + 0.02 * bn
        rate = 1.0 if bn else 0.3  # batch norm learns faster (Ioffe & Szegedy's claim)
        shape = (1 - np.exp(-rate * np.arange(epochs + 1))) / (1 - np.exp(-rate * epochs))
        acc = 0.1 + (acc_end - 0.1) * shape
        met = pd.DataFrame(
            {
                "run_id": run_id,
                "epoch": np.arange(epochs + 1, dtype=np.int32),
                "step": np.arange(epochs + 1) * steps_per_epoch,
                "train_loss": 1 - acc, "train_acc": acc, "val_loss": 1 - acc, "val_acc": acc,
                "test_loss": 1 - acc, "test_acc": acc - 0.005,
                "wall_s": np.arange(epochs + 1) * 0.5,
            }
        )  # fmt: skip
        info = {
            "run_id": run_id,
            "experiment": experiment,
            "run": run,
            "status": "ok",
            "wall_s": 3.0,
            "diverged": None,
            "config": {
                **TRAINING,
                "epochs": epochs,
                "dataset": dataset,
                "widths": widths,
                "activation": act,
                "init": ini,
                "seed": seed,
                **remedy,
            },
        }
        rows.append(run_summary(info, tr[tr["source"] == "probe"], met, tr[tr["source"] == "step"]))
        trace_parts.append(tr.assign(experiment=experiment))
        metric_parts.append(met.assign(experiment=experiment))
    paths = {name: out / f"{name}.parquet" for name in ("runs", "traces", "metrics")}
    runs = pd.DataFrame(rows, columns=RUNS_SCHEMA.names)
    pq.write_table(pa.Table.from_pandas(runs, schema=RUNS_SCHEMA, preserve_index=False),
                   paths["runs"])  # fmt: skip
    traces = pd.concat(trace_parts, ignore_index=True)
    tschema = SCHEMA.append(pa.field("experiment", pa.string()))
    pq.write_table(pa.Table.from_pandas(traces, schema=tschema, preserve_index=False),
                   paths["traces"])  # fmt: skip
    mschema = METRICS_SCHEMA.append(pa.field("experiment", pa.string()))
    metrics = pd.concat(metric_parts, ignore_index=True)
    pq.write_table(pa.Table.from_pandas(metrics, schema=mschema, preserve_index=False),
                   paths["metrics"])  # fmt: skip
    return paths


__all__ = ["DIAGNOSTICS", "SCHEMA", "synthetic_aggregate"]
