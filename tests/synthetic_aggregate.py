"""A synthetic many-run aggregate: results/{runs,traces,metrics}.parquet as docs/outputs.md
describes them, for figure tests and benchmarks/bench_figures.py (no TensorFlow needed).

Per-run traces and metrics are generated, then summarised by the real
``gradsweep.aggregate.run_summary``, so runs.parquet has exactly the aggregate's columns.
Sigmoid-like nets start vanishing (shrink factor per layer) and some seeds never learn.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gradsweep.aggregate import RUNS_SCHEMA, run_summary
from gradsweep.io import DIAGNOSTICS, METRICS_SCHEMA, TRACES_SCHEMA

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
) -> dict[str, Path]:
    """Write runs/traces/metrics.parquet into ``out``; return their paths."""
    rng = np.random.default_rng(rng_seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = TRAINING["epochs"]
    rows, trace_parts, metric_parts = [], [], []
    for d, w, act, ini, seed in itertools.product(depth, width, activation, init, seeds):
        widths = [w] * d
        run = f"d{d}-w{w}-{act}-{ini}-s{seed}"
        run_id = f"{experiment}/{run}"
        k = SHRINK[act] * (1.3 if ini == "scaled_normal" else 1.0)
        stuck = act == "sigmoid" and d >= 6 and seed % 3 == 1  # a seed that never learns
        escape = rng.integers(1, epochs) if k > 1.5 else 0
        probe = []
        for e in range(epochs + 1):
            k_e = k if (stuck or e < escape) else 1 + 0.1 * (k - 1)
            for layer in range(1, d + 2):
                g = 0.05 * k_e ** -(d - min(layer, d)) * rng.lognormal(0, 0.1)
                diag = [0.2, 3.0, 0.6, 0.3, 0.0, 0.5] if layer <= d else [np.nan] * 6
                for param, scale in (("bias", 1.0), ("kernel", 3.0)):
                    probe.append((run_id, e, e * steps_per_epoch, layer, param, g * scale,
                                  "probe", *diag))  # fmt: skip
        steps = [
            (run_id, (s - 1) // steps_per_epoch + 1, s, layer, "bias",
             0.05 * rng.lognormal(0, 0.5), "step", *([np.nan] * 6))
            for s in range(1, epochs * steps_per_epoch + 1)
            for layer in range(1, d + 2)
        ]  # fmt: skip
        cols = TRACES_SCHEMA.names
        tr = pd.DataFrame(probe + steps, columns=cols)
        acc_end = 0.1 if stuck else 0.9 - 0.01 * d + rng.normal(0, 0.01)
        acc = np.linspace(0.1, acc_end, epochs + 1)
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
                "dataset": "digits",
                "widths": widths,
                "activation": act,
                "init": ini,
                "seed": seed,
            },
        }
        rows.append(run_summary(info, tr[tr["source"] == "probe"], met))
        trace_parts.append(tr.assign(experiment=experiment))
        metric_parts.append(met.assign(experiment=experiment))
    paths = {name: out / f"{name}.parquet" for name in ("runs", "traces", "metrics")}
    runs = pd.DataFrame(rows, columns=RUNS_SCHEMA.names)
    pq.write_table(pa.Table.from_pandas(runs, schema=RUNS_SCHEMA, preserve_index=False),
                   paths["runs"])  # fmt: skip
    traces = pd.concat(trace_parts, ignore_index=True)
    tschema = TRACES_SCHEMA.append(pa.field("experiment", pa.string()))
    pq.write_table(pa.Table.from_pandas(traces, schema=tschema, preserve_index=False),
                   paths["traces"])  # fmt: skip
    mschema = METRICS_SCHEMA.append(pa.field("experiment", pa.string()))
    metrics = pd.concat(metric_parts, ignore_index=True)
    pq.write_table(pa.Table.from_pandas(metrics, schema=mschema, preserve_index=False),
                   paths["metrics"])  # fmt: skip
    return paths


__all__ = ["DIAGNOSTICS", "synthetic_aggregate"]
