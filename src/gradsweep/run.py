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
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gradsweep.batches import CACHE_FILES, cache_entry, cache_key, is_cached
from gradsweep.io import METRICS_SCHEMA, TRACES_SCHEMA, write_json, write_parquet

_DEVICE: list[str] = []  # the device string, once this process has set TensorFlow up


def _setup_tensorflow(threads: int) -> str:
    """Thread pools, determinism and the device, once per process (a batch keeps its threads
    and its GPU for all its runs); must run before TensorFlow executes an op."""
    if _DEVICE:
        return _DEVICE[0]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from gradsweep.train import configure_threads

    configure_threads(threads)
    # Only the GPUs in CUDA_VISIBLE_DEVICES (SLURM sets it) are listed. One run uses one GPU:
    # with several visible (a local `--resources gpu=N` run) take one no other run holds.
    gpus = tf.config.list_physical_devices("GPU")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    cuda_ids = visible.split(",")[: len(gpus)] if visible else [str(i) for i in range(len(gpus))]
    if len(gpus) > 1:
        pick = _claim_gpu(cuda_ids)
        gpus, cuda_ids = [gpus[pick]], [cuda_ids[pick]]
        tf.config.set_visible_devices(gpus, "GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(0)  # before determinism: it needs a seed; each run sets its own
    tf.config.experimental.enable_op_determinism()
    logical = tf.config.list_logical_devices("GPU")
    _DEVICE.append(f"{logical[0].name} (CUDA device {cuda_ids[0]})" if logical else "/device:CPU:0")
    return _DEVICE[0]


_GPU_LOCKS: list = []  # lock files of the GPUs this process holds, open until it exits


def _claim_gpu(cuda_ids: list[str]) -> int:
    """Index of a GPU that no other run on this machine holds (one lock file per CUDA device,
    released when the process ends), or a spread-out pick when all are taken."""
    import fcntl
    import tempfile

    for index, cuda_id in enumerate(cuda_ids):
        handle = open(Path(tempfile.gettempdir()) / f"gradsweep-gpu-{cuda_id}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _GPU_LOCKS.append(handle)
        return index
    return os.getpid() % len(cuda_ids)


def norms_frame(
    run_id: str,
    names: Sequence[tuple[int, str]],
    grad: np.ndarray,
    epoch: int,
    steps: np.ndarray,
    source: str,
    update: np.ndarray | None = None,
    param: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long format: one row per (recorded step, parameter tensor). ``names`` are the
    (layer, param) of the columns of ``grad``, ``update`` (‖Δθ‖) and ``param`` (‖θ‖ after the
    update); ``relative_update`` = update / param."""
    rows = len(grad)
    nan = np.full(grad.shape, np.nan)
    update = nan if update is None else np.asarray(update, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = nan if param is None else update / np.asarray(param, dtype=np.float64)
    return pd.DataFrame(
        {
            "run_id": run_id,
            "epoch": epoch,
            "step": np.repeat(steps, len(names)),
            "layer": np.tile([layer for layer, _ in names], rows),
            "param": np.tile([name for _, name in names], rows),
            "grad_norm": np.asarray(grad, dtype=np.float64).ravel(),
            "update_norm": update.ravel(),
            "relative_update": relative.ravel(),
            "source": source,
        }
    )


class _Checkpoint:
    """Per-epoch parts plus the weights; ``state.json``, written last, marks an epoch done."""

    def __init__(self, folder: Path, cfg_hash: str) -> None:
        self.folder, self.cfg_hash = folder, cfg_hash
        self.state = folder / "state.json"

    def last_epoch(self) -> int | None:
        """The last complete epoch of this config, or None (none, another config, parts lost)."""
        try:
            state = json.loads(self.state.read_text())
            epoch = int(state["epoch"]) if state["config_hash"] == self.cfg_hash else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if epoch is None:
            return None
        parts = [f"{k}-{e:05d}.parquet" for k in ("traces", "metrics") for e in range(epoch + 1)]
        needed = [*parts, f"weights-{epoch:05d}.index"]
        return epoch if all((self.folder / name).is_file() for name in needed) else None

    @staticmethod
    def _variables(trainer: Any) -> Any:
        """The parameters, and (only where there are any, so earlier checkpoints still read)
        the optimizer's slots and batch norm's moving statistics."""
        import tensorflow as tf

        state = {"state": trainer.state} if trainer.state else {}
        return tf.train.Checkpoint(params=trainer.net.params, **state)

    def save(self, epoch: int, trainer: Any, traces: pd.DataFrame, metrics: pd.DataFrame) -> None:
        write_parquet(traces, self.folder / f"traces-{epoch:05d}.parquet", TRACES_SCHEMA)
        write_parquet(metrics, self.folder / f"metrics-{epoch:05d}.parquet", METRICS_SCHEMA)
        self._variables(trainer).write(str(self.folder / f"weights-{epoch:05d}"))
        write_json({"epoch": epoch, "config_hash": self.cfg_hash}, self.state)
        for old in self.folder.glob("weights-*"):
            if not old.name.startswith(f"weights-{epoch:05d}"):
                old.unlink()

    def restore(self, epoch: int, trainer: Any) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
        self._variables(trainer).read(str(self.folder / f"weights-{epoch:05d}")).assert_consumed()

        def part(kind: str, e: int) -> pd.DataFrame:
            return pq.read_table(self.folder / f"{kind}-{e:05d}.parquet").to_pandas()

        traces = [part("traces", e) for e in range(epoch + 1)]
        metrics = [part("metrics", e) for e in range(epoch + 1)]
        return traces, metrics


# What one process reuses across the runs it trains: the data (as NumPy and as tensors) and,
# per net shape and training setting, a net's variables with the functions compiled for them.
_DATA: dict[tuple, Any] = {}
_COMPILED: OrderedDict[tuple, tuple] = OrderedDict()
_COMPILED_KEEP = 4  # batches run in sorted order: runs of one shape come one after another


def _load(path: Path) -> Any:
    from gradsweep.data import load_prepared

    stat = path.stat()
    key = ("splits", str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _DATA:
        _DATA.clear()  # one data set at a time
        _DATA[key] = load_prepared(path)
    return _DATA[key]


def _tensors(path: Path, splits: Any, n: int) -> tuple:
    """x and one-hot y of the first ``n`` training images, validation and test, as tensors."""
    key = ("tensors", str(path.resolve()), n)
    if key not in _DATA:
        import tensorflow as tf

        def tensors(x: np.ndarray, y: np.ndarray) -> tuple:
            return tf.constant(x, tf.float32), tf.one_hot(y, 10)

        _DATA[key] = (
            *tensors(splits.x_train[:n], splits.y_train[:n]),
            *tensors(splits.x_val, splits.y_val),
            *tensors(splits.x_test, splits.y_test),
        )
    return _DATA[key]


def _compiled(cfg: dict[str, Any], n_inputs: int, n: int, jit_compile: bool) -> tuple:
    """(net, trainer, diagnose) for ``cfg``, its variables set to ``cfg``'s initial weights.

    Everything a traced function bakes in is in the key; init, bias_init, weight_scale and
    seed only set the variables' values, so runs that differ in them share the compiled code.
    """
    import tensorflow as tf

    from gradsweep.config import setting
    from gradsweep.diagnostics import layer_diagnostics
    from gradsweep.model import DenseNet
    from gradsweep.train import SGD, Trainer

    sizes = [n_inputs, *cfg["widths"], 10]
    net_shape = {k: setting(cfg, k) for k in ("normalization", "residual")}
    fresh = DenseNet(
        sizes,
        cfg["activation"],
        cfg["init"],
        cfg["bias_init"],
        cfg["weight_scale"],
        cfg["seed"],
        **net_shape,
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


def train_run(
    cfg: dict[str, Any],
    data: Path,
    out_dir: Path,
    threads: int = 1,
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] = print,
    jit_compile: bool = True,
) -> dict[str, Any]:
    """Train the run ``cfg`` (one entry of ``gradsweep.config.expand_runs``) on ``data``."""
    splits = _load(Path(data))  # before TensorFlow starts: a bad file fails in a second
    out_dir = Path(out_dir)
    for folder in filter(None, (out_dir, checkpoint_dir)):  # temporary files of a killed run
        for stale in Path(folder).glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    device = _setup_tensorflow(threads)
    import keras
    import tensorflow as tf

    from gradsweep.diagnostics import diagnostics_frame
    from gradsweep.train import epoch_batches

    keras.utils.set_random_seed(cfg["seed"])
    run_id = f"{cfg['experiment']}/{cfg['run']}"
    n = cfg["train_subset"] or len(splits.x_train)
    x_train, y_train, x_val, y_val, x_test, y_test = _tensors(Path(data), splits, n)
    x_probe, y_probe = x_train[: cfg["probe_size"]], y_train[: cfg["probe_size"]]
    net, trainer, diagnose = _compiled(cfg, int(x_train.shape[1]), n, jit_compile)
    steps_per_epoch = n // cfg["batch_size"]
    ckpt = _Checkpoint(checkpoint_dir, cache_key(cfg)) if checkpoint_dir else None

    names = net.param_names
    previous: list[np.ndarray] = []  # θ after the epoch before: the probe's epoch update

    def epoch_record(epoch: int, step_norms: dict | None, wall: float) -> tuple:
        """Probe gradient norms and the three splits' loss/accuracy after ``epoch``."""
        step = epoch * steps_per_epoch
        now = [p.numpy() for p in net.params]
        moved = size = None
        if previous:
            moved = np.array([[np.linalg.norm(a - b) for a, b in zip(now, previous, strict=True)]])
            size = np.array([[np.linalg.norm(a) for a in now]])
        previous[:] = now
        grad = trainer.probe(x_probe, y_probe).numpy()[None]
        probe = norms_frame(run_id, names, grad, epoch, np.array([step]), "probe", moved, size)
        diagnostics = diagnostics_frame(diagnose(x_probe, y_probe).numpy())
        parts = [probe.merge(diagnostics, on="layer", how="left")]  # output layer: NaN
        if step_norms is not None and len(step_norms["grad"]):
            first = (epoch - 1) * steps_per_epoch + 1
            recorded = first + np.arange(len(step_norms["grad"])) * max(cfg["trace_every"], 1)
            step_rows = norms_frame(
                run_id,
                names,
                step_norms["grad"],
                epoch,
                recorded,
                "step",
                step_norms["update"],
                step_norms["param"],
            )
            parts.insert(0, step_rows)
        metrics = {"run_id": run_id, "epoch": epoch, "step": step}
        for split, (x, y) in {
            "train": (x_train, y_train),
            "val": (x_val, y_val),
            "test": (x_test, y_test),
        }.items():
            metrics[f"{split}_loss"], metrics[f"{split}_acc"] = trainer.accuracy_and_loss(x, y)
        metrics["wall_s"] = wall
        return pd.concat(parts, ignore_index=True), pd.DataFrame([metrics])

    first_epoch, traces, metrics, wall0 = 0, [], [], 0.0
    if ckpt and (last := ckpt.last_epoch()) is not None:
        traces, metrics = ckpt.restore(last, trainer)
        previous[:] = [p.numpy() for p in net.params]
        first_epoch, wall0 = last + 1, float(metrics[-1]["wall_s"].iloc[0])
        log(f"{run_id}: resumed from the checkpoint after epoch {last}")
    elif ckpt:
        shutil.rmtree(ckpt.folder, ignore_errors=True)  # none, or one of another config
    t0 = time.perf_counter() - wall0
    diverged = None
    for epoch in range(first_epoch, cfg["epochs"] + 1):
        step_norms = None
        if epoch > 0:
            batches = tf.constant(epoch_batches(n, cfg["batch_size"], cfg["seed"], epoch))
            step_norms = {
                k: v.numpy() for k, v in trainer.train_epoch(x_train, y_train, batches).items()
            }
        t, m = epoch_record(epoch, step_norms, time.perf_counter() - t0)
        diverged = _divergence(t, m, net, epoch)
        if diverged and diverged["step"] is not None:  # keep step traces up to the bad step
            t = t[(t["source"] != "step") | (t["step"] <= diverged["step"])]
        traces.append(t)
        metrics.append(m)
        row = m.iloc[0]
        log(
            f"{run_id} epoch {epoch}/{cfg['epochs']}: train loss {row.train_loss:.4f} "
            f"acc {row.train_acc:.4f} | val acc {row.val_acc:.4f} | test acc {row.test_acc:.4f} "
            f"| {row.wall_s:.1f} s"
        )
        if diverged:
            log(
                f"{run_id} DIVERGED at epoch {epoch}, step {diverged['step']}: {diverged['reason']}"
            )
            break
        if ckpt:
            ckpt.save(epoch, trainer, t, m)

    # reindexed: parts checkpointed by an earlier version lack its newer columns (NaN there)
    all_traces = pd.concat(traces, ignore_index=True).reindex(columns=TRACES_SCHEMA.names)
    write_parquet(all_traces, out_dir / "traces.parquet", TRACES_SCHEMA)
    write_parquet(
        pd.concat(metrics, ignore_index=True), out_dir / "metrics.parquet", METRICS_SCHEMA
    )
    info = {
        "run_id": run_id,
        "experiment": cfg["experiment"],
        "run": cfg["run"],
        "config": cfg,
        "status": "diverged" if diverged else "ok",
        "diverged": diverged,
        "wall_s": round(time.perf_counter() - t0, 3),
        "device": device,
        "threads": threads,
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "versions": {
            "python": platform.python_version(),
            **{p: version(p) for p in ("gradsweep", "tensorflow", "numpy")},
        },
    }
    write_json(info, out_dir / "run.json")
    if ckpt:
        shutil.rmtree(ckpt.folder, ignore_errors=True)
    return info


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
            cached_as = json.loads((entry / "run.json").read_text())["run_id"]
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


def _divergence(traces: pd.DataFrame, metrics: pd.DataFrame, net: Any, epoch: int) -> dict | None:
    """NaN or Inf in a gradient norm, a loss or a weight: where it first showed."""
    bad_steps = traces.loc[~np.isfinite(traces["grad_norm"]), "step"]
    losses = metrics[["train_loss", "val_loss", "test_loss"]].to_numpy()
    weights_ok = all(bool(np.isfinite(p.numpy()).all()) for p in net.params)
    if bad_steps.empty and np.isfinite(losses).all() and weights_ok:
        return None
    reason = "non-finite gradient" if not bad_steps.empty else "non-finite loss or weights"
    return {
        "epoch": epoch,
        "step": int(bad_steps.min()) if not bad_steps.empty else None,
        "reason": reason,
    }
