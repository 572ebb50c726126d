"""One training run from config to ``traces.parquet``, ``metrics.parquet`` and ``run.json``.

The run checkpoints after every epoch (weights, traces and metrics so far) into its own
folder; a rerun after a kill resumes from there and gives the same results as an
uninterrupted run, because each epoch's batch order is a pure function of (seed, epoch).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gradsweep.io import METRICS_SCHEMA, TRACES_SCHEMA, write_json, write_parquet


def _setup_tensorflow(threads: int, seed: int) -> str:
    """Thread pools, determinism and the device; must run before TensorFlow executes an op."""
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
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    logical = tf.config.list_logical_devices("GPU")
    return f"{logical[0].name} (CUDA device {cuda_ids[0]})" if logical else "/device:CPU:0"


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


def _param_index(n_params: int) -> pd.DataFrame:
    """Column order of the trainer's norms: [W1, b1, W2, b2, …] → (layer, param)."""
    return pd.DataFrame(
        {
            "layer": [i // 2 + 1 for i in range(n_params)],
            "param": ["kernel" if i % 2 == 0 else "bias" for i in range(n_params)],
        }
    )


def norms_frame(
    run_id: str, norms: np.ndarray, epoch: int, steps: np.ndarray, source: str
) -> pd.DataFrame:
    """Long format: one row per (recorded step, parameter tensor)."""
    rows, n_params = norms.shape
    index = _param_index(n_params)
    return pd.DataFrame(
        {
            "run_id": run_id,
            "epoch": epoch,
            "step": np.repeat(steps, n_params),
            "layer": np.tile(index["layer"].to_numpy(), rows),
            "param": np.tile(index["param"].to_numpy(), rows),
            "grad_norm": norms.astype(np.float64).ravel(),
            "source": source,
        }
    )


def config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


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

    def save(self, epoch: int, net: Any, traces: pd.DataFrame, metrics: pd.DataFrame) -> None:
        import tensorflow as tf

        write_parquet(traces, self.folder / f"traces-{epoch:05d}.parquet", TRACES_SCHEMA)
        write_parquet(metrics, self.folder / f"metrics-{epoch:05d}.parquet", METRICS_SCHEMA)
        tf.train.Checkpoint(params=net.params).write(str(self.folder / f"weights-{epoch:05d}"))
        write_json({"epoch": epoch, "config_hash": self.cfg_hash}, self.state)
        for old in self.folder.glob("weights-*"):
            if not old.name.startswith(f"weights-{epoch:05d}"):
                old.unlink()

    def restore(self, epoch: int, net: Any) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
        import tensorflow as tf

        tf.train.Checkpoint(params=net.params).read(
            str(self.folder / f"weights-{epoch:05d}")
        ).assert_consumed()

        def part(kind: str, e: int) -> pd.DataFrame:
            return pq.read_table(self.folder / f"{kind}-{e:05d}.parquet").to_pandas()

        traces = [part("traces", e) for e in range(epoch + 1)]
        metrics = [part("metrics", e) for e in range(epoch + 1)]
        return traces, metrics


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
    from gradsweep.data import load_prepared

    splits = load_prepared(data)  # before TensorFlow starts: a bad file fails in a second
    out_dir = Path(out_dir)
    for folder in filter(None, (out_dir, checkpoint_dir)):  # temporary files of a killed run
        for stale in Path(folder).glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    device = _setup_tensorflow(threads, cfg["seed"])
    import tensorflow as tf

    from gradsweep.diagnostics import diagnostics_frame, layer_diagnostics
    from gradsweep.model import DenseNet
    from gradsweep.train import SGD, Trainer, epoch_batches

    run_id = f"{cfg['experiment']}/{cfg['run']}"
    n = cfg["train_subset"] or len(splits.x_train)
    n_classes = 10

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.constant(x, tf.float32), tf.one_hot(y, n_classes)

    x_train, y_train = tensors(splits.x_train[:n], splits.y_train[:n])
    x_val, y_val = tensors(splits.x_val, splits.y_val)
    x_test, y_test = tensors(splits.x_test, splits.y_test)
    x_probe, y_probe = x_train[: cfg["probe_size"]], y_train[: cfg["probe_size"]]

    net = DenseNet(
        [x_train.shape[1], *cfg["widths"], n_classes],
        cfg["activation"],
        cfg["init"],
        cfg["bias_init"],
        cfg["weight_scale"],
        cfg["seed"],
    )
    sgd = SGD(
        learning_rate=cfg["learning_rate"],
        batch_size=cfg["batch_size"],
        l2=cfg["l2"],
        l2_n=cfg["l2_n"] or n,
        trace_every=cfg["trace_every"],
        jit_compile=jit_compile,
    )
    trainer = Trainer(net, cfg["loss"], sgd)
    diagnose = tf.function(partial(layer_diagnostics, net, cfg["loss"]))
    steps_per_epoch = n // cfg["batch_size"]
    ckpt = _Checkpoint(checkpoint_dir, config_hash(cfg)) if checkpoint_dir else None

    def epoch_record(epoch: int, step_norms: np.ndarray | None, wall: float) -> tuple:
        """Probe gradient norms and the three splits' loss/accuracy after ``epoch``."""
        step = epoch * steps_per_epoch
        probe = norms_frame(
            run_id, trainer.probe(x_probe, y_probe).numpy()[None], epoch, np.array([step]), "probe"
        )
        diagnostics = diagnostics_frame(diagnose(x_probe, y_probe).numpy())
        parts = [probe.merge(diagnostics, on="layer", how="left")]  # output layer: NaN
        if step_norms is not None and len(step_norms):
            first = (epoch - 1) * steps_per_epoch + 1
            recorded = first + np.arange(len(step_norms)) * max(cfg["trace_every"], 1)
            parts.insert(0, norms_frame(run_id, step_norms, epoch, recorded, "step"))
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
        traces, metrics = ckpt.restore(last, net)
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
            step_norms = trainer.train_epoch(x_train, y_train, batches).numpy()
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
            ckpt.save(epoch, net, t, m)

    write_parquet(pd.concat(traces, ignore_index=True), out_dir / "traces.parquet", TRACES_SCHEMA)
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
