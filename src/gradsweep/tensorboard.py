"""TensorBoard event files of a sweep: per-epoch scalars and HParams records of every run.

Layout under ``results/<sweep>/tensorboard/``
(``tensorboard --logdir results/<sweep>/tensorboard``):

- ``<experiment>/<run>/``: one TensorBoard run per trained run. Its scalars per epoch
  (step = epoch, 0 = at initialisation), the run's HParams session (every setting of its
  resolved config) and, once each, the four HParams metrics of ``runs.parquet``.
- ``hparams-config/``: the HParams experiment summary of the whole sweep (every hparam with
  the union of its values over all experiments, and the four metrics). TensorBoard's HParams
  plugin reads one such summary per logdir (it takes the first it finds), so it is written
  once for the sweep, not per experiment.

Written with TensorBoard's own summary protos and record writer, without importing TensorFlow.
Values are stored as float32, as ``tf.summary.scalar`` does; non-finite values (a diverged
run) are left out, so TensorBoard shows no point or an empty cell rather than NaN.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.record_writer import RecordWriter

from gradsweep.aggregate import hidden_bias_norms
from gradsweep.config import OPTIONAL_DEFAULTS
from gradsweep.io import read_run_info, read_run_traces
from gradsweep.verdicts import has_ratio

# HParams metrics: runs.parquet columns, each written once per run as tag "hparams/<column>".
METRICS = {
    "best_val_acc": "best validation accuracy over the epochs",
    "test_acc": "test accuracy at the best-validation epoch",
    "grad_ratio_init": "probe bias-gradient norm of the last hidden layer / the first, at init",
    "grad_ratio_final": "probe bias-gradient norm of the last hidden layer / the first, at the end",
}  # the ratios: none for a net with one hidden layer (gradsweep.verdicts)
METRIC_PREFIX = "hparams/"

# Per-epoch scalars from metrics.parquet: tag -> column.
EPOCH_SCALARS = {
    f"{what}/{split}": f"{split}_{short}"
    for what, short in (("loss", "loss"), ("accuracy", "acc"))
    for split in ("train", "val", "test")
}
# Keys of run.json's config that are not settings of the run.
NOT_HPARAMS = ("run", "trainer_version")


class TensorBoardError(RuntimeError):
    """An input file does not hold what the event files need; the message names it."""


def run_hparams(config: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Every setting of a run's resolved config as an HParams value: ``widths`` as in
    runs.parquet (``100-100``), plus ``depth``; unset (null) settings are left out, the
    remedy settings a config leaves at their defaults are filled in."""
    hparams: dict[str, bool | int | float | str] = {}
    for key, value in {**OPTIONAL_DEFAULTS, **config}.items():
        if key in NOT_HPARAMS or value is None:
            continue
        if key == "widths":
            hparams["depth"] = len(value)
            value = "-".join(map(str, value))
        if not isinstance(value, bool | int | float | str):
            raise TensorBoardError(f"config key {key!r} = {value!r}: not a bool, number or string")
        hparams[key] = value
    return hparams


def _domain(name: str, values: Iterable[Any]) -> hp.Discrete:
    distinct = set(values)
    types = {type(v) for v in distinct}
    if types == {int, float}:  # e.g. a setting written 1 in one experiment, 0.5 in another
        distinct = {float(v) for v in distinct}
    elif len(types) > 1:
        found = ", ".join(sorted(t.__name__ for t in types))
        raise TensorBoardError(f"hparam {name!r} has values of several types ({found})")
    return hp.Discrete(sorted(distinct))


def experiment_summary(configs: Sequence[Mapping[str, Any]]) -> summary_pb2.Summary:
    """The HParams experiment summary of a sweep: every hparam of any run, its domain the
    values the runs take, and the four metrics."""
    values: dict[str, list[Any]] = {}
    for config in configs:
        for name, value in run_hparams(config).items():
            values.setdefault(name, []).append(value)
    hparams = [hp.HParam(name, _domain(name, vals)) for name, vals in sorted(values.items())]
    metrics = [
        hp.Metric(METRIC_PREFIX + name, display_name=name, description=text)
        for name, text in METRICS.items()
    ]
    return hp.hparams_config_pb(hparams, metrics)


def session_end_summary(status: str, end_time: float) -> summary_pb2.Summary:
    """The HParams session end record (``hp`` has no TensorFlow-free helper for it)."""
    info = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.STATUS_SUCCESS if status == "ok" else api_pb2.STATUS_FAILURE,
        end_time_secs=end_time,
    )
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=hparams_metadata.SESSION_END_INFO_TAG,
        metadata=hparams_metadata.create_summary_metadata(
            plugin_data_pb2.HParamsPluginData(session_end_info=info)
        ),
        tensor=hparams_metadata.NULL_TENSOR,
    )
    return summary


def _write_events(folder: Path, events: Iterable[tuple[float, int, summary_pb2.Summary]]) -> None:
    """One event file in ``folder`` (named the way TensorBoard's writers name theirs)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events.out.tfevents.{time.time():.6f}.gradsweep"
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        header = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        writer.write(header.SerializeToString())
        for wall_time, step, summary in events:
            event = event_pb2.Event(wall_time=wall_time, step=step, summary=summary)
            writer.write(event.SerializeToString())


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def run_events(
    info: Mapping[str, Any],
    summary: Mapping[str, Any],
    metrics: pd.DataFrame,
    probe: pd.DataFrame,
    start: float,
) -> list[tuple[float, int, summary_pb2.Summary]]:
    """The events of one run: (wall time, step, summary). ``summary`` is its runs.parquet row,
    ``metrics`` its metrics.parquet rows, ``probe`` its probe rows of traces.parquet."""
    end = start + float(info["wall_s"])
    events = [(start, 0, hp.hparams_pb(run_hparams(info["config"]), info["run_id"], start))]

    wall = dict(zip(metrics["epoch"].astype(int), start + metrics["wall_s"], strict=True))
    for row in metrics.itertuples(index=False):
        for tag, column in EPOCH_SCALARS.items():
            value = getattr(row, column)
            if _finite(value):
                events.append((wall[row.epoch], int(row.epoch), scalar_pb(tag, value)))

    depth = len(info["config"]["widths"])
    for row in probe.itertuples(index=False):
        layer = "output" if row.layer == depth + 1 else f"layer{row.layer}"
        if _finite(row.grad_norm):
            tag = f"probe_grad_norm_{row.param}/{layer}"
            events.append((wall.get(row.epoch, end), int(row.epoch), scalar_pb(tag, row.grad_norm)))
        if _finite(row.relative_update):  # the epoch's ‖θ_e − θ_(e−1)‖ ÷ ‖θ_(e−1)‖
            tag = f"probe_relative_update_{row.param}/{layer}"
            value = row.relative_update
            events.append((wall.get(row.epoch, end), int(row.epoch), scalar_pb(tag, value)))
    norms = hidden_bias_norms(probe)
    ratios = norms.iloc[:, -1] / norms.iloc[:, 0] if has_ratio(depth) else pd.Series(dtype=float)
    for epoch, ratio in ratios.items():  # one hidden layer: no ratio (gradsweep.verdicts)
        if _finite(ratio):
            events.append((wall.get(epoch, end), int(epoch), scalar_pb("grad_ratio", ratio)))

    best_epoch = int(summary["best_epoch"])
    steps = {
        "best_val_acc": best_epoch,
        "test_acc": best_epoch,
        "grad_ratio_init": 0,
        "grad_ratio_final": int(metrics["epoch"].max()),
    }
    for name, step in steps.items():
        if _finite(summary[name]):
            tag = METRIC_PREFIX + name
            events.append((wall.get(step, end), step, scalar_pb(tag, summary[name])))
    events.append((end, int(metrics["epoch"].max()), session_end_summary(info["status"], end)))
    return events


PROBE_COLUMNS = ("run_id", "epoch", "layer", "param", "grad_norm", "relative_update", "source")


def _probe_rows(traces: str | Path) -> pd.DataFrame:
    """One run's probe rows (row group by row group: its step rows can be millions)."""
    where = ds.field("source") == "probe"
    return read_run_traces(traces, PROBE_COLUMNS, where, TensorBoardError).to_pandas()


def _replace_dir(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def write_experiment(
    infos: Sequence[str | Path],
    runs: str | Path,
    traces: Sequence[str | Path],
    metrics: str | Path,
    out_dir: str | Path,
) -> list[str]:
    """Write ``out_dir/<run>/`` for every run of one experiment from its aggregates
    (results/<sweep>/experiments/<experiment>/), its runs' run.json files and their traces
    (``traces``: one file per run, in the order of ``infos``), one run at a time; return the
    run names.

    Wall times: a run starts at its run.json's modification time minus its wall_s, and each
    epoch at that start plus the epoch's wall_s, so TensorBoard's "relative" axis shows the
    seconds since training started."""
    out_dir = Path(out_dir)
    summaries = pd.read_parquet(runs).set_index("run_id")
    epochs = pd.read_parquet(metrics)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        names = []
        if len(traces) != len(infos):
            raise TensorBoardError("infos and traces must list the same runs")
        for path, trace_path in zip(infos, traces, strict=True):
            info = read_run_info(path, TensorBoardError)
            run_id = info["run_id"]
            if run_id not in summaries.index:
                raise TensorBoardError(f"{runs}: no row for run {run_id!r}; rerun aggregation")
            start = Path(path).stat().st_mtime - float(info["wall_s"])
            events = run_events(
                info,
                summaries.loc[run_id],
                epochs[epochs["run_id"] == run_id].sort_values("epoch"),
                _probe_rows(trace_path),
                start,
            )
            _write_events(tmp / info["run"], events)
            names.append(info["run"])
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names


def write_sweep_config(infos: Sequence[str | Path], out_dir: str | Path) -> None:
    """Write ``out_dir`` (``results/<sweep>/tensorboard/hparams-config``): the sweep's HParams
    experiment summary, from every run's run.json."""
    out_dir = Path(out_dir)
    configs = [read_run_info(path, TensorBoardError)["config"] for path in infos]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        _write_events(tmp, [(time.time(), 0, experiment_summary(configs))])
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
