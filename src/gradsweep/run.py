"""Training runs from config to ``traces.parquet``, ``metrics.parquet`` and ``run.json``.

The run checkpoints after every epoch (weights, traces and metrics so far) into its own
folder; a rerun after a kill resumes from there and gives the same results as an
uninterrupted run, because each epoch's batch order is a pure function of (seed, epoch).

``train_batch`` trains several runs in one process (see ``gradsweep.batches``): TensorFlow is
set up once, the data are loaded once, and runs of one net shape share their compiled
functions (the variables are reassigned, the traced and XLA-compiled code is reused), with
results bit for bit equal to a run trained alone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import tensorflow as tf

from gradsweep.batches import CACHE_FILES, cache_entry, cache_key, is_cached
from gradsweep.config import setting
from gradsweep.data import ALIGNMENT, Splits, load_prepared
from gradsweep.device import claim_gpu, cuda_ids, prepare_environment
from gradsweep.diagnostics import diagnostics_frame, layer_diagnostics
from gradsweep.io import (
    METRICS_SCHEMA,
    TRACES_SCHEMA,
    as_table,
    atomic_path,
    parquet_options,
    read_run_info,
    write_json,
    write_parquet,
)
from gradsweep.model import DenseNet
from gradsweep.train import SGD, Trainer, configure_threads, epoch_batches

_DEVICE: list[str] = []  # the device string, once this process has set TensorFlow up


def _setup_tensorflow(threads: int) -> str:
    """Thread pools, determinism and the device, once per process (a batch keeps its threads
    and its GPU for all its runs); must run before TensorFlow executes an op."""
    if _DEVICE:
        return _DEVICE[0]
    prepare_environment()  # for callers that did not (the log level is read at its first use)
    configure_threads(threads)
    # Only the GPUs in CUDA_VISIBLE_DEVICES (SLURM sets it) are listed. One run uses one GPU:
    # with several visible (a local `--resources gpu=N` run) take one no other run holds.
    gpus = tf.config.list_physical_devices("GPU")
    ids = cuda_ids(len(gpus))
    if len(gpus) > 1:
        pick = claim_gpu(ids)
        gpus, ids = [gpus[pick]], [ids[pick]]
        tf.config.set_visible_devices(gpus, "GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(0)  # before determinism: it needs a seed; each run sets its own
    tf.config.experimental.enable_op_determinism()
    logical = tf.config.list_logical_devices("GPU")
    _DEVICE.append(f"{logical[0].name} (CUDA device {ids[0]})" if logical else "/device:CPU:0")
    return _DEVICE[0]


def norms_frame(
    run_id: str,
    names: Sequence[tuple[int, str]],
    grad: np.ndarray,
    epoch: int,
    steps: np.ndarray,
    source: str,
    update: np.ndarray | None = None,
    param: np.ndarray | None = None,
    split: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> pd.DataFrame:
    """Long format: one row per (recorded step, parameter tensor). ``names`` are the
    (layer, param) of the columns of ``grad``, ``update`` (‖Δθ‖), ``param`` (‖θ‖ after the
    update) and ``split`` (‖Δθ's weight-decay part‖, ‖the rest‖: None where it is not stored,
    plain SGD's step rows, η ‖∂C0/∂θ‖); ``relative_update`` = update / param.

    The norms are float32 (TensorFlow's, or NumPy's of float32 arrays), and so is the quotient:
    IEEE division of two float32 numbers is their float64 quotient rounded to float32, bit for
    bit. The split is float64 (the probe's epoch sums are computed in float64)."""
    rows = len(grad)
    nan = np.full(grad.shape, np.nan, dtype=np.float32)
    update = nan if update is None else np.asarray(update, dtype=np.float32)
    decay, grad_step = (
        (nan, nan)
        if split is None
        else (nan if a is None else np.asarray(a, np.float64) for a in split)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = nan if param is None else update / np.asarray(param, dtype=np.float32)
    return pd.DataFrame(
        {
            "run_id": run_id,
            "epoch": epoch,
            "step": np.repeat(steps, len(names)),
            "layer": np.tile([layer for layer, _ in names], rows),
            "param": np.tile([name for _, name in names], rows),
            "grad_norm": np.asarray(grad, dtype=np.float32).ravel(),
            "update_norm": update.ravel(),
            "relative_update": relative.ravel(),
            "decay_norm": decay.ravel(),
            "grad_step_norm": grad_step.ravel(),
            "source": source,
        }
    )


class _Checkpoint:
    """Per-epoch parts plus the weights; ``state.json``, written last, marks an epoch done."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = folder, key  # the run's cache key: whose checkpoint it is
        self.state = folder / "state.json"

    def last_epoch(self) -> int | None:
        """The last complete epoch of this config, or None (none, another config, parts lost)."""
        try:
            state = json.loads(self.state.read_text())
            epoch = int(state["epoch"]) if state.get("cache_key") == self.key else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if epoch is None:
            return None
        parts = [f"{k}-{e:05d}.parquet" for k in ("traces", "metrics") for e in range(epoch + 1)]
        needed = [*parts, f"weights-{epoch:05d}.index"]
        return epoch if all((self.folder / name).is_file() for name in needed) else None

    def holds(self, epoch: int, trainer: Trainer) -> bool:
        """Whether the checkpoint after ``epoch`` has all of ``trainer``'s variables: not one
        written before the optimizer's decay slots existed (momentum or Adam with l2 > 0)."""
        if not trainer.decay_state:
            return True
        prefix = str(self.folder / f"weights-{epoch:05d}")
        return any(name.startswith("decay/") for name, _ in tf.train.list_variables(prefix))

    @staticmethod
    def _variables(trainer: Trainer) -> tf.train.Checkpoint:
        """The parameters, and (only where there are any, so earlier checkpoints still read)
        the optimizer's slots and batch norm's moving statistics, and the decay slots."""
        state = {"state": trainer.state} if trainer.state else {}
        if trainer.decay_state:
            state["decay"] = trainer.decay_state
        return tf.train.Checkpoint(params=trainer.net.params, **state)

    def save(
        self, epoch: int, trainer: Trainer, traces: pd.DataFrame, metrics: pd.DataFrame
    ) -> None:
        write_parquet(traces, self.folder / f"traces-{epoch:05d}.parquet", TRACES_SCHEMA)
        write_parquet(metrics, self.folder / f"metrics-{epoch:05d}.parquet", METRICS_SCHEMA)
        self._variables(trainer).write(str(self.folder / f"weights-{epoch:05d}"))
        write_json({"epoch": epoch, "cache_key": self.key}, self.state)
        for old in self.folder.glob("weights-*"):
            if not old.name.startswith(f"weights-{epoch:05d}"):
                old.unlink()

    def restore(self, epoch: int, trainer: Trainer) -> list[pd.DataFrame]:
        """The weights into ``trainer``; the metrics of epochs 0 … ``epoch``."""
        self._variables(trainer).read(str(self.folder / f"weights-{epoch:05d}")).assert_consumed()
        return [self._part("metrics", e) for e in range(epoch + 1)]

    def traces(self, epoch: int) -> Iterator[pd.DataFrame]:
        """The traces of epochs 0 … ``epoch``, one epoch at a time."""
        return (self._part("traces", e) for e in range(epoch + 1))

    def _part(self, kind: str, epoch: int) -> pd.DataFrame:
        return pq.read_table(self.folder / f"{kind}-{epoch:05d}.parquet").to_pandas()


# What one process reuses across the runs it trains: the data (NumPy arrays, and tensors over
# their memory on the CPU: _tensor) and, per net shape and training setting, a net's variables
# with the functions compiled for them.
_DATA: dict[tuple, Any] = {}
_COMPILED: OrderedDict[tuple, tuple[DenseNet, Trainer, Callable]] = OrderedDict()
_COMPILED_KEEP = 4  # batches run in sorted order: runs of one shape come one after another


def _load(path: Path) -> Splits:
    stat = path.stat()
    key = ("splits", str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _DATA:
        _DATA.clear()  # one data set at a time
        _DATA[key] = load_prepared(path)
    return _DATA[key]


def _tensors(path: Path, splits: Splits, n: int) -> tuple:
    """x and one-hot y of the first ``n`` training images, validation and test, as tensors."""
    key = ("tensors", str(path.resolve()), n)
    if key not in _DATA:
        _DATA[key] = (
            *_as_tensors(splits.x_train[:n], splits.y_train[:n]),
            *_as_tensors(splits.x_val, splits.y_val),
            *_as_tensors(splits.x_test, splits.y_test),
        )
    return _DATA[key]


def _as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    return _tensor(x), tf.one_hot(y, 10)


def _tensor(x: np.ndarray) -> tf.Tensor:
    """``x`` as a float32 tensor. On the CPU, a float32 array that TensorFlow can use in place
    (C-contiguous, :data:`~gradsweep.data.ALIGNMENT`-aligned, as ``load_prepared`` returns them)
    becomes a tensor over its own memory, through DLPack: the process holds the data set once,
    not as an array and a tensor, and never as tf.constant's three copies at a time (its
    second copy lasts until the next op). On a GPU, or another array: a copy."""
    if (
        _DEVICE[0] == "/device:CPU:0"
        and x.dtype == np.float32
        and x.flags.c_contiguous
        and x.ctypes.data % ALIGNMENT == 0
    ):
        return tf.experimental.dlpack.from_dlpack(x.__dlpack__())
    return tf.constant(x, tf.float32)


def _compiled(
    cfg: dict[str, Any], n_inputs: int, n: int, jit_compile: bool
) -> tuple[DenseNet, Trainer, Callable]:
    """(net, trainer, diagnose) for ``cfg``, its variables set to ``cfg``'s initial weights.

    Everything a traced function bakes in is in the key; init, bias_init, weight_scale, the
    weight and bias variances and seed only set the variables' values, so runs that differ in
    them share the compiled code.
    """
    sizes = [n_inputs, *cfg["widths"], 10]
    net_shape = {k: setting(cfg, k) for k in ("normalization", "residual")}
    variances = {k: setting(cfg, k) for k in ("weight_variance", "bias_variance")}
    fresh = DenseNet(
        sizes,
        cfg["activation"],
        cfg["init"],
        cfg["bias_init"],
        cfg["weight_scale"],
        cfg["seed"],
        **net_shape,
        **variances,
    )
    sgd = SGD(
        learning_rate=cfg["learning_rate"],
        batch_size=cfg["batch_size"],
        l2=cfg["l2"],
        l2_n=cfg["l2_n"] or n,
        trace_every=cfg["trace_every"],
        jit_compile=jit_compile,
        optimizer=setting(cfg, "optimizer"),
        nesterov=setting(cfg, "nesterov"),
    )
    key = (tuple(sizes), cfg["activation"], cfg["loss"], sgd, n, *net_shape.values())
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        net, trainer, diagnose = _COMPILED[key]
        for variable, value in zip(net.params + net.state, fresh.params + fresh.state, strict=True):
            variable.assign(value)
        trainer.reset()
        return net, trainer, diagnose
    trainer = Trainer(fresh, cfg["loss"], sgd)
    diagnose = tf.function(partial(layer_diagnostics, fresh, cfg["loss"]))
    _COMPILED[key] = (fresh, trainer, diagnose)
    while len(_COMPILED) > _COMPILED_KEEP:
        _COMPILED.popitem(last=False)
    return fresh, trainer, diagnose


@dataclass
class _Run:
    """One run's tensors and compiled net, and what it trains and measures in an epoch."""

    cfg: dict[str, Any]
    net: DenseNet
    trainer: Trainer
    diagnose: Callable
    splits: dict[str, tuple[tf.Tensor, tf.Tensor]]  # train, val, test: (x, one-hot y)
    n: int  # training images

    @classmethod
    def start(cls, cfg: dict[str, Any], data: Path, splits: Splits, jit_compile: bool) -> _Run:
        """The run's seed set, its tensors, and a net (compiled before, or now) at its init."""
        keras.utils.set_random_seed(cfg["seed"])
        n = cfg["train_subset"] or len(splits.x_train)
        x_train, y_train, x_val, y_val, x_test, y_test = _tensors(data, splits, n)
        net, trainer, diagnose = _compiled(cfg, int(x_train.shape[1]), n, jit_compile)
        tensors = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
        return cls(cfg, net, trainer, diagnose, tensors, n)

    @property
    def run_id(self) -> str:
        return f"{self.cfg['experiment']}/{self.cfg['run']}"

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.cfg["batch_size"]

    def train(self, epoch: int) -> dict[str, np.ndarray] | None:
        """The epoch's SGD steps and the norms of those traced (none in epoch 0: the initial
        net is recorded as it is)."""
        if epoch == 0:
            return None
        cfg, (x, y) = self.cfg, self.splits["train"]
        batches = tf.constant(epoch_batches(self.n, cfg["batch_size"], cfg["seed"], epoch))
        return {k: v.numpy() for k, v in self.trainer.train_epoch(x, y, batches).items()}

    def record(
        self,
        epoch: int,
        step_norms: dict[str, np.ndarray] | None,
        previous: list[np.ndarray],
        wall: float,
    ) -> tuple[pd.DataFrame, pd.DataFrame, list[np.ndarray]]:
        """After ``epoch``: its traces (the steps', then the probe's), its metrics, and θ."""
        params = [p.numpy() for p in self.net.params]
        steps = self.steps_per_epoch if step_norms is None else int(step_norms["steps"])
        parts = [self._probe_traces(epoch, params, previous, steps)]
        if step_norms is not None and len(step_norms["grad"]):
            parts.insert(0, self._step_traces(epoch, step_norms))
        traces = pd.concat(parts, ignore_index=True)
        return traces, self._metrics(epoch, wall), params

    def _probe_traces(
        self, epoch: int, params: list[np.ndarray], previous: list[np.ndarray], steps: int
    ) -> pd.DataFrame:
        """‖∂C0/∂θ‖ on the probe images, the epoch's ‖Δθ‖ and ‖θ‖ and its split (``steps``:
        the steps taken in it), the layer diagnostics and the RMS per-image error norm of each
        hidden layer (Trainer.probe_norms)."""
        moved, size = _epoch_update(params, previous)
        split = None
        if previous:
            split = _epoch_split(params, previous, self.trainer.epoch_decay_parts(previous, steps))
        x, y = (t[: self.cfg["probe_size"]] for t in self.splits["train"])
        grad, per_image = (t.numpy() for t in self.trainer.probe(x, y))
        step = np.array([epoch * self.steps_per_epoch])
        names = self.net.param_names
        probe = norms_frame(self.run_id, names, grad[None], epoch, step, "probe", moved, size,
                            split)  # fmt: skip
        diagnostics = diagnostics_frame(self.diagnose(x, y).numpy())
        diagnostics["example_grad_rms"] = per_image.astype(np.float32)  # hidden layers
        return probe.merge(diagnostics, on="layer", how="left")  # output layer: NaN

    def _step_traces(self, epoch: int, step_norms: dict[str, np.ndarray]) -> pd.DataFrame:
        """The norms of the epoch's traced steps, at their step numbers (plain SGD: no
        ``grad_step_norm``, η ``grad_norm``)."""
        first = (epoch - 1) * self.steps_per_epoch + 1
        every = max(self.cfg["trace_every"], 1)
        recorded = first + np.arange(len(step_norms["grad"])) * every
        names = self.net.param_names
        grad, update, param = (step_norms[k] for k in ("grad", "update", "param"))
        split = (step_norms["decay"], step_norms.get("grad_step"))
        return norms_frame(self.run_id, names, grad, epoch, recorded, "step", update, param, split)

    def _metrics(self, epoch: int, wall: float) -> pd.DataFrame:
        """Loss and accuracy of the three splits after ``epoch``, and the wall time so far."""
        metrics = {"run_id": self.run_id, "epoch": epoch, "step": epoch * self.steps_per_epoch}
        for split, (x, y) in self.splits.items():
            metrics[f"{split}_loss"], metrics[f"{split}_acc"] = self.trainer.evaluate(x, y)
        metrics["wall_s"] = wall
        return pd.DataFrame([metrics])


def _epoch_update(
    params: list[np.ndarray], previous: list[np.ndarray]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(‖θ − θ_prev‖, ‖θ‖) per parameter tensor, one row; (None, None) in the first epoch."""
    if not previous:
        return None, None
    moved = np.array([[np.linalg.norm(a - b) for a, b in zip(params, previous, strict=True)]])
    return moved, np.array([[np.linalg.norm(a) for a in params]])


def _epoch_split(
    params: list[np.ndarray], previous: list[np.ndarray], decay_parts: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """(‖D‖, ‖θ − θ_prev − D‖) per parameter tensor, one row each, where D is the weight
    decay's part of the epoch's displacement (``Trainer.epoch_decay_parts``; None: 0)."""
    decay, rest = [], []
    for a, b, part in zip(params, previous, decay_parts, strict=True):
        d = np.zeros(a.shape) if part is None else part
        decay.append(np.linalg.norm(d))
        rest.append(np.linalg.norm(a.astype(np.float64) - b - d))
    return np.array([decay]), np.array([rest])


@dataclass
class _Record:
    """What a run has recorded so far and keeps in memory: one metrics frame per epoch (its
    traces are in ``traces.parquet`` already, or in the checkpoint), θ after the last epoch
    (the next probe's epoch update starts there), and the run's clock."""

    metrics: list[pd.DataFrame] = field(default_factory=list)
    params: list[np.ndarray] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)  # wall time 0

    @property
    def next_epoch(self) -> int:
        return len(self.metrics)

    def wall(self) -> float:
        return time.perf_counter() - self.start

    def add(self, metrics: pd.DataFrame, params: list[np.ndarray]) -> None:
        self.metrics.append(metrics)
        self.params = params


# Rows of traces.parquet gathered in memory before they are written as one row group: an
# epoch's rows go out once this many have gathered (~30 MB as Arrow), so the train job's
# memory does not grow with the run's length, and a run of many short epochs is not a file of
# many tiny row groups.
ROW_GROUP_ROWS = 1 << 18


class _TraceFile:
    """A run's ``traces.parquet``, written in row groups as its epochs finish, into a temporary
    file that gets its final name only when the run ends (:func:`gradsweep.io.atomic_path`)."""

    def __init__(self, writer: pq.ParquetWriter, row_group_rows: int) -> None:
        self.writer, self.row_group_rows = writer, row_group_rows
        self.parts: list[pd.DataFrame] = []
        self.rows = 0

    @classmethod
    @contextmanager
    def open(cls, path: Path, row_group_rows: int = ROW_GROUP_ROWS) -> Iterator[_TraceFile]:
        options = parquet_options(TRACES_SCHEMA)
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, TRACES_SCHEMA, **options) as writer:
            traces = cls(writer, row_group_rows)
            yield traces
            traces.flush()

    def add(self, traces: pd.DataFrame) -> None:
        """An epoch's rows (reindexed: parts checkpointed by an earlier version lack its newer
        columns, which read as null)."""
        self.parts.append(traces.reindex(columns=TRACES_SCHEMA.names))
        self.rows += len(traces)
        if self.rows >= self.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            frame = pd.concat(self.parts, ignore_index=True)
            self.writer.write_table(as_table(frame, TRACES_SCHEMA), row_group_size=len(frame))
        self.parts, self.rows = [], 0


def train_run(
    cfg: dict[str, Any],
    data: Path,
    out_dir: Path,
    threads: int = 1,
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] = print,
    jit_compile: bool = True,
) -> dict[str, Any]:
    """Train the run ``cfg`` (one entry of ``gradsweep.config.expand_runs``) on ``data``.

    Epoch 0 records the initial net; each later epoch trains, records, stops the run if it
    diverged, and checkpoints. Writes ``traces.parquet``, ``metrics.parquet``, then
    ``run.json`` into ``out_dir``, and returns what ``run.json`` holds.
    """
    splits = _load(Path(data))  # before TensorFlow sets up its devices: a bad file fails fast
    _remove_temporary_files(out_dir, checkpoint_dir)  # of a killed run
    device = _setup_tensorflow(threads)
    run = _Run.start(cfg, Path(data), splits, jit_compile)
    ckpt = _Checkpoint(Path(checkpoint_dir), cache_key(cfg)) if checkpoint_dir else None
    record = _resume(ckpt, run.trainer, run.run_id, log)
    with _TraceFile.open(Path(out_dir) / "traces.parquet") as traces_file:
        if ckpt and record.next_epoch:  # resumed: the checkpoint's epochs first
            for part in ckpt.traces(record.next_epoch - 1):
                traces_file.add(part)
        diverged = _train_epochs(run, record, ckpt, traces_file, log)
    metrics = pd.concat(record.metrics, ignore_index=True)
    write_parquet(metrics, Path(out_dir) / "metrics.parquet", METRICS_SCHEMA)
    info = _run_info(cfg, diverged, round(record.wall(), 3), device, threads)
    write_json(info, Path(out_dir) / "run.json")  # last: a folder with run.json is complete
    if ckpt:
        shutil.rmtree(ckpt.folder, ignore_errors=True)
    return info


def _train_epochs(
    run: _Run,
    record: _Record,
    ckpt: _Checkpoint | None,
    traces_file: _TraceFile,
    log: Callable[[str], None],
) -> dict | None:
    """Train, record and checkpoint the epochs after ``record``'s until the last, or until
    one diverges (returned: where)."""
    epochs = run.cfg["epochs"]
    for epoch in range(record.next_epoch, epochs + 1):
        step_norms = run.train(epoch)
        traces, metrics, params = run.record(epoch, step_norms, record.params, record.wall())
        diverged = _divergence(traces, metrics, params, epoch)
        traces = _up_to_divergence(traces, diverged)
        traces_file.add(traces)
        record.add(metrics, params)
        log(_epoch_line(run.run_id, epochs, metrics))
        if diverged:
            where = f"epoch {epoch}, step {diverged['step']}: {diverged['reason']}"
            log(f"{run.run_id} DIVERGED at {where}")
            return diverged
        if ckpt:
            ckpt.save(epoch, run.trainer, traces, metrics)
    return None


def _remove_temporary_files(*folders: Path | None) -> None:
    for folder in filter(None, folders):
        for stale in Path(folder).glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def _resume(
    ckpt: _Checkpoint | None, trainer: Trainer, run_id: str, log: Callable[[str], None]
) -> _Record:
    """The record of the last epoch checkpointed (weights and optimizer state restored into
    ``trainer``, the clock running on from its wall time), or a fresh one; a checkpoint of
    another config, or one without the optimizer's decay slots (written before they existed),
    is removed."""
    if ckpt and (last := ckpt.last_epoch()) is not None and ckpt.holds(last, trainer):
        metrics = ckpt.restore(last, trainer)
        params = [p.numpy() for p in trainer.net.params]
        start = time.perf_counter() - float(metrics[-1]["wall_s"].iloc[0])
        log(f"{run_id}: resumed from the checkpoint after epoch {last}")
        return _Record(metrics, params, start)
    if ckpt:
        shutil.rmtree(ckpt.folder, ignore_errors=True)
    return _Record()


def _epoch_line(run_id: str, epochs: int, metrics: pd.DataFrame) -> str:
    row = metrics.iloc[0]
    return (
        f"{run_id} epoch {row.epoch}/{epochs}: train loss {row.train_loss:.4f} "
        f"acc {row.train_acc:.4f} | val acc {row.val_acc:.4f} | test acc {row.test_acc:.4f} "
        f"| {row.wall_s:.1f} s"
    )


def _run_info(
    cfg: dict[str, Any], diverged: dict | None, wall_s: float, device: str, threads: int
) -> dict[str, Any]:
    """``run.json``: the run, its outcome and where and with what it was trained."""
    return {
        "run_id": f"{cfg['experiment']}/{cfg['run']}",
        "experiment": cfg["experiment"],
        "run": cfg["run"],
        "config": cfg,
        "status": "diverged" if diverged else "ok",
        "diverged": diverged,
        "wall_s": wall_s,
        "device": device,
        "threads": threads,
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "versions": {
            "python": platform.python_version(),
            **{p: version(p) for p in ("gradsweep", "tensorflow", "numpy")},
        },
    }


def train_batch(
    runs: Sequence[dict[str, Any]],
    data: Path,
    manifest: Path,
    cache: Path,
    checkpoints: Path,
    logs: Path,
    threads: int = 1,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the runs of one batch one after another in this process.

    A run found in the run cache is not trained again. Each trained run goes to the cache as
    soon as it ends, so a crash at run k keeps runs 1 … k−1; its per-epoch lines go to
    ``logs/<experiment>/<run>.log``. A run that raises does not stop the others; the batch
    fails after the last one (with the run named), and writes ``manifest`` only when all are
    cached. ``progress`` gets one line per run ("run i/n …") and every epoch line.
    """
    members = []
    failed = []
    for i, cfg in enumerate(runs, start=1):
        run_id = f"{cfg['experiment']}/{cfg['run']}"
        entry = cache_entry(cache, cfg)
        member = {"run_id": run_id, "cache": str(entry)}
        start, start_cpu = time.perf_counter(), time.process_time()
        if is_cached(entry):
            cached_as = read_run_info(entry / "run.json")["run_id"]
            also = "" if cached_as == run_id else f" (trained as {cached_as})"
            progress(f"run {i}/{len(runs)} {run_id}: in the run cache{also}, not trained")
            members.append({**member, "trained": False})
            continue
        progress(f"run {i}/{len(runs)} {run_id}: training")
        log_path = Path(logs) / cfg["experiment"] / f"{cfg['run']}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w", buffering=1) as run_log:

            def log(line: str, run_log: Any = run_log) -> None:
                print(line, file=run_log)
                progress(line)

            try:
                info = train_run(
                    cfg,
                    data=data,
                    out_dir=entry,
                    threads=threads,
                    checkpoint_dir=Path(checkpoints) / cfg["experiment"] / cfg["run"],
                    log=log,
                )
            except Exception:  # noqa: BLE001  (a bug or a bad file: the others still train)
                text = traceback.format_exc()
                print(text, file=run_log)
                progress(f"run {i}/{len(runs)} {run_id} FAILED:\n{text}")
                failed.append(run_id)
                continue
        seconds = round(time.perf_counter() - start, 3)
        cpu_s = round(time.process_time() - start_cpu, 3)  # all threads: less load-sensitive
        done = {"trained": True, "status": info["status"], "seconds": seconds, "cpu_s": cpu_s}
        members.append({**member, **done})
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(runs)} runs of this batch failed: {', '.join(failed)} "
            "(their logs say why); the others are in the run cache and are not trained again"
        )
    result = {"runs": members, "files": list(CACHE_FILES)}
    write_json(result, manifest)
    return result


def _divergence(
    traces: pd.DataFrame, metrics: pd.DataFrame, params: list[np.ndarray], epoch: int
) -> dict | None:
    """NaN or Inf in a gradient norm, a loss or a weight: where it first showed."""
    bad_steps = traces.loc[~np.isfinite(traces["grad_norm"]), "step"]
    losses = metrics[["train_loss", "val_loss", "test_loss"]].to_numpy()
    weights_ok = all(bool(np.isfinite(p).all()) for p in params)
    if bad_steps.empty and np.isfinite(losses).all() and weights_ok:
        return None
    reason = "non-finite gradient" if not bad_steps.empty else "non-finite loss or weights"
    return {
        "epoch": epoch,
        "step": int(bad_steps.min()) if not bad_steps.empty else None,
        "reason": reason,
    }


def _up_to_divergence(traces: pd.DataFrame, diverged: dict | None) -> pd.DataFrame:
    """The traces without the step rows after the step that diverged, if there was one."""
    if diverged is None or diverged["step"] is None:
        return traces
    return traces[(traces["source"] != "step") | (traces["step"] <= diverged["step"])]
