"""Gather every run's files into the sweep's folder, ``results/<sweep>/``: one row per run and
all metrics (the traces stay in the run files, their only copy)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from gradsweep.io import (
    METRICS_SCHEMA,
    RunFileError,
    atomic_path,
    is_in,
    parquet_options,
    read_run_info,
    read_run_traces,
    write_parquet,
)
from gradsweep.settings import IDENTITY_FIELDS, SETTING_FIELDS, config_id, run_settings
from gradsweep.theory import COLUMNS as PREDICTION_COLUMNS
from gradsweep.theory import prediction, variances
from gradsweep.verdicts import ONE_LAYER, dynamic_verdict, escape_epoch, verdict

# runs.parquet's columns and types (docs/outputs.md). Written with this schema so that
# per-experiment tables stack even where a setting is null in one experiment only.
RUNS_SCHEMA = pa.schema(
    [
        *IDENTITY_FIELDS,
        *SETTING_FIELDS,
        ("status", pa.string()),
        ("best_val_acc", pa.float64()),
        ("best_epoch", pa.int64()),
        ("test_acc", pa.float64()),
        ("final_test_acc", pa.float64()),
        ("wall_s", pa.float64()),
        ("grad_ratio_init", pa.float64()),
        ("grad_ratio_final", pa.float64()),
        ("grad_ratio_median", pa.float64()),
        ("grad_slope_init", pa.float64()),
        ("update_ratio_init", pa.float64()),
        ("update_ratio_final", pa.float64()),
        ("z_drift", pa.float64()),
        ("escape_epoch", pa.float64()),
        ("verdict_init", pa.string()),
        ("verdict_final", pa.string()),
        ("verdict", pa.string()),
        ("probe_bias_norms_init", pa.list_(pa.float64())),
        ("bias_order_frac", pa.float64()),
        ("dead_frac_final", pa.float64()),
        ("saturated_frac_final", pa.float64()),
        # the mean-field prediction from the run's settings (gradsweep.theory)
        *((name, pa.float64()) for name in PREDICTION_COLUMNS),
    ]
)


# Trace columns added after TRAINER_VERSION 2 (issue 15: update sizes, percentiles; issue 24:
# the update's weight-decay and gradient parts): runs trained before them are not retrained
# (their numbers did not change), so their tables read with these columns null.
OPTIONAL_COLUMNS = {
    "update_norm",
    "relative_update",
    "z_p15",
    "z_p50",
    "z_p85",
    "decay_norm",
    "grad_step_norm",
    "example_grad_rms",  # issue 23: the per-image error norm (its runs.parquet slope: null)
}


class AggregationError(RunFileError):
    """A run's file is missing or unreadable: aggregation names it instead of dropping it."""


def _read_table(path: str | Path, schema: pa.Schema) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise AggregationError(f"{path}: cannot be read as Parquet ({err}); rerun its job") from err
    for name in OPTIONAL_COLUMNS & (set(schema.names) - set(table.column_names)):
        table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    missing = set(schema.names) - set(table.column_names)
    if missing:
        raise AggregationError(f"{path}: missing columns {sorted(missing)}; rerun its job")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, ValueError) as err:
        raise AggregationError(f"{path}: columns of the wrong type ({err}); rerun its job") from err


def _check_run_id(path: str | Path, table: pa.Table, run_id: str) -> None:
    """A table of another run (or of several) must not pass as this run's."""
    found = set(table["run_id"].unique().to_pylist())
    if found != {run_id}:
        raise AggregationError(f"{path}: holds runs {sorted(found)}, not {run_id!r}; rerun its job")


def hidden_bias_norms(probe: pd.DataFrame) -> pd.DataFrame:
    """Probe bias-gradient norms: one row per epoch, one column per hidden layer (1 = first)."""
    bias = probe[(probe["source"] == "probe") & (probe["param"] == "bias")]
    table = bias.pivot_table(index="epoch", columns="layer", values="grad_norm", dropna=False)
    return table.iloc[:, :-1]  # the last layer is the output layer


def grad_slope(probe: pd.DataFrame, depth: int) -> float:
    """The least-squares slope of ln ``example_grad_rms`` at initialisation over the hidden
    layers against k = the number of layers back from the last hidden layer (k = depth − l):
    how much ln RMS‖δ_l(x)‖ changes per layer going toward the input (negative: vanishing).
    NaN for one hidden layer, and where a layer's value is missing (traces from before the
    column), not finite or not positive."""
    if depth < 2 or "example_grad_rms" not in probe:
        return np.nan
    rows = probe[
        (probe["source"] == "probe")
        & (probe["param"] == "bias")
        & (probe["epoch"] == 0)
        & (probe["layer"] <= depth)
    ].drop_duplicates("layer")
    rms = pd.to_numeric(rows["example_grad_rms"], errors="coerce").to_numpy(np.float64)
    if len(rms) != depth or not (np.isfinite(rms) & (rms > 0)).all():
        return np.nan
    k = depth - rows["layer"].to_numpy(np.float64)
    y = np.log(rms)
    return float(((k - k.mean()) * (y - y.mean())).sum() / ((k - k.mean()) ** 2).sum())


def _hidden_mean(probe: pd.DataFrame, column: str, epoch: int) -> float:
    """Mean over hidden layers of a diagnostic column at ``epoch``."""
    rows = probe[(probe["param"] == "bias") & (probe["epoch"] == epoch)]
    return float(rows[column].mean()) if column in rows and rows[column].notna().any() else np.nan


def update_ratio(steps: pd.DataFrame, depth: int, epoch: int) -> float:
    """Median over the recorded SGD steps of ``epoch`` of the last hidden layer's relative
    kernel update ‖ΔW‖/‖W‖ ÷ the first hidden layer's (NaN with one hidden layer, which has
    no ratio, and where the steps have no finite ratio, e.g. traces from before
    ``relative_update`` existed)."""
    if "relative_update" not in steps or steps.empty or depth < 2:
        return np.nan
    rows = steps[
        (steps["source"] == "step")
        & (steps["param"] == "kernel")
        & (steps["epoch"] == epoch)
        & steps["layer"].isin([1, depth])
    ]
    per_step = rows.pivot_table(
        index="step", columns="layer", values="relative_update", aggfunc="first", dropna=False
    )
    if 1 not in per_step or depth not in per_step:
        return np.nan
    first, last = per_step[1].astype(float), per_step[depth].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (last / first).to_numpy()
    ratio = ratio[~np.isnan(ratio)]  # a step with 0 ÷ 0 has no ratio; x ÷ 0 is ∞
    return float(np.median(ratio)) if len(ratio) else np.nan


PERCENTILE_COLUMNS = ("z_p15", "z_p50", "z_p85")


def drift(values: pd.Series) -> float:
    """How far one percentile moved over training: its max − min over the probe epochs."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(v.max() - v.min()) if len(v) else np.nan


def z_drift(probe: pd.DataFrame, depth: int, columns: Sequence[str] = PERCENTILE_COLUMNS) -> float:
    """How far the distribution of the last hidden layer's unit-0 input moved over training:
    the largest :func:`drift` of its 15th, 50th and 85th percentile over the probe images
    (NaN: not recorded)."""
    present = [c for c in columns if c in probe]
    if not present or probe.empty:
        return np.nan
    rows = probe[(probe["source"] == "probe") & (probe["layer"] == depth)]
    per_epoch = rows.dropna(subset=present, how="all").drop_duplicates("epoch")
    return float(pd.Series([drift(per_epoch[c]) for c in present]).max())


def run_summary(
    info: dict[str, Any],
    probe: pd.DataFrame,
    metrics: pd.DataFrame,
    steps: pd.DataFrame | None = None,
) -> dict:
    """One row of runs.parquet from a run's run.json, probe traces and metrics; ``steps``
    holds (at least) the step trace rows of epoch 1 and of the last epoch, for the update
    ratios (None: no update ratios)."""
    cfg = info["config"]
    trained = metrics[metrics["epoch"] > 0]
    if info.get("diverged"):  # from that epoch on the weights are not finite: no accuracy
        trained = trained[trained["epoch"] < info["diverged"]["epoch"]]
    valid = trained.dropna(subset=["val_acc"])
    best = valid.loc[valid["val_acc"].idxmax()] if not valid.empty else None
    last_epoch = int(metrics["epoch"].max())
    norms = hidden_bias_norms(probe)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = norms.iloc[:, -1] / norms.iloc[:, 0]  # last ÷ first hidden layer, per epoch
    increasing = (norms.diff(axis=1).iloc[:, 1:] > 0).all(axis=1)
    median_ratio = float(ratios.median()) if ratios.notna().any() else np.nan
    if len(cfg["widths"]) == 1:  # one hidden layer: last = first, no ratio (verdicts)
        ratios = pd.Series(np.nan, index=norms.index)
        median_ratio = np.nan
    if info.get("diverged"):  # the epoch it diverged at has no meaningful ratio
        ratios = ratios[ratios.index < info["diverged"]["epoch"]]
    # a diverged run never stays healthy to the end
    escape = np.nan if info["status"] == "diverged" else escape_epoch(ratios)
    init_ratio = float(ratios.get(0, np.nan))
    final_ratio = float(ratios.get(last_epoch, np.nan))
    settings = run_settings(info["experiment"], cfg)
    steps = steps if steps is not None else pd.DataFrame()
    depth = len(cfg["widths"])
    verdicts = {
        "verdict_init": verdict("ok", init_ratio),  # nothing has diverged before training
        "verdict_final": verdict(info["status"], final_ratio),
        "verdict": dynamic_verdict(info["status"], ratios, escape),
    }
    if depth == 1:
        verdicts = {k: "diverged" if v == "diverged" else ONE_LAYER for k, v in verdicts.items()}
    return {
        "run_id": info["run_id"],
        "experiment": info["experiment"],
        "run": info["run"],
        "config_id": config_id(settings),  # before the variances: unset, they stay out of it
        **settings,
        **variances(settings),  # the σ_w², σ_b² the run had: its setting or its init's
        "seed": cfg["seed"],
        "status": info["status"],
        "best_val_acc": float(best["val_acc"]) if best is not None else np.nan,
        "best_epoch": int(best["epoch"]) if best is not None else -1,
        "test_acc": float(best["test_acc"]) if best is not None else np.nan,
        "final_test_acc": float(trained["test_acc"].iloc[-1]) if len(trained) else np.nan,
        "wall_s": float(info["wall_s"]),
        "grad_ratio_init": init_ratio,
        "grad_ratio_final": final_ratio,
        "grad_ratio_median": median_ratio,
        "grad_slope_init": grad_slope(probe, depth),
        "update_ratio_init": update_ratio(steps, depth, 1),
        "update_ratio_final": update_ratio(steps, depth, last_epoch),
        "z_drift": z_drift(probe, depth),
        "escape_epoch": escape,
        **verdicts,
        "probe_bias_norms_init": [float(v) for v in norms.loc[0]] if 0 in norms.index else [],
        "bias_order_frac": float(increasing.mean()) if len(increasing) else np.nan,
        "dead_frac_final": _hidden_mean(probe, "dead_frac", last_epoch),
        "saturated_frac_final": _hidden_mean(probe, "saturated_frac", last_epoch),
        **prediction(settings),
    }


def _with_experiment(table: pa.Table, experiment: str) -> pa.Table:
    return table.append_column("experiment", pa.array([experiment] * table.num_rows, pa.string()))


# what run_summary reads of the step rows: the kernels' relative updates (update ratios)
UPDATE_COLUMNS = ("run_id", "epoch", "step", "layer", "param", "relative_update", "source")


def _run_traces(path: str | Path, run_id: str, last_epoch: int) -> tuple[pa.Table, pa.Table]:
    """A run's probe rows (every column) and the kernel step rows of epoch 1 and of the last
    epoch (what the update ratios read), read row group by row group: a run's step rows can be
    millions, and nothing else of them is needed."""
    probe = read_run_traces(path, where=ds.field("source") == "probe", error=AggregationError)
    epochs = sorted({1, last_epoch})
    steps = read_run_traces(
        path,
        UPDATE_COLUMNS,
        (ds.field("source") == "step") & (ds.field("param") == "kernel") & is_in("epoch", epochs),
        AggregationError,
    )
    _check_run_id(path, probe, run_id)
    if steps.num_rows:
        _check_run_id(path, steps, run_id)
    return probe, steps


def aggregate(
    infos: Sequence[str],
    traces: Sequence[str],
    metrics: Sequence[str],
    out_runs: str | Path,
    out_metrics: str | Path,
) -> pd.DataFrame:
    """Write runs.parquet (one row per run) and the stacked metrics from every run's files,
    run by run; of the traces only the rows the summaries need are read (they stay where they
    are: the run files are their only copy, docs/outputs.md)."""
    if not (len(infos) == len(traces) == len(metrics)):
        raise AggregationError("infos, traces and metrics must list the same runs")
    rows, metric_tables = [], []
    for info_path, trace_path, metric_path in zip(infos, traces, metrics, strict=True):
        info = read_run_info(info_path, AggregationError)
        metric_table = _read_table(metric_path, METRICS_SCHEMA)
        _check_run_id(metric_path, metric_table, info["run_id"])
        metric_tables.append(_with_experiment(metric_table, info["experiment"]))
        last = pc.max(metric_table["epoch"]).as_py() or 1
        probe, steps = _run_traces(trace_path, info["run_id"], last)
        rows.append(
            run_summary(info, probe.to_pandas(), metric_table.to_pandas(), steps.to_pandas())
        )
    with atomic_path(out_metrics) as tmp:
        table = pa.concat_tables(metric_tables)
        pq.write_table(table, tmp, **parquet_options(table.schema))
    runs = pd.DataFrame(rows, columns=RUNS_SCHEMA.names)
    write_parquet(runs, out_runs, RUNS_SCHEMA)
    return runs


def concatenate(parts: Sequence[str | Path], out: str | Path) -> None:
    """Stack tables of one schema (e.g. per-experiment aggregates) into one file, streaming."""
    schema = pq.read_schema(parts[0])
    options = parquet_options(schema)
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, **options) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches():
                writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)
