"""What a training process sets before ``import tensorflow``, and its pick of a GPU.

Nothing here imports TensorFlow: call :func:`prepare_environment` first thing in a process
that will train (``workflow/scripts/train.py`` does, before it imports ``gradsweep.run``), so
TensorFlow reads the environment when it loads. The rest of the set-up (thread pools,
determinism, the device) needs TensorFlow and is ``gradsweep.run._setup_tensorflow``.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

_GPU_LOCKS: list[IO[str]] = []  # lock files of the GPUs this process holds, open until it exits


def prepare_environment() -> None:
    """TensorFlow's C++ log at warnings and above (unless the caller chose a level)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cuda_ids(n_gpus: int) -> list[str]:
    """The CUDA ids of the ``n_gpus`` GPUs TensorFlow lists: those in CUDA_VISIBLE_DEVICES
    (SLURM sets it), in its order, or 0 … n − 1 without it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",")[:n_gpus] if visible else [str(i) for i in range(n_gpus)]


def claim_gpu(ids: list[str]) -> int:
    """Index of a GPU that no other run on this machine holds (one lock file per CUDA device,
    released when the process ends), or a spread-out pick when all are taken."""
    for index, cuda_id in enumerate(ids):
        handle = open(Path(tempfile.gettempdir()) / f"gradsweep-gpu-{cuda_id}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _GPU_LOCKS.append(handle)
        return index
    return os.getpid() % len(ids)
