"""Train/validation/test splits and scaling; the prepared ``.npz`` every train job loads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradsweep.data.datasets import spec
from gradsweep.data.readers import load_raw, read_npz
from gradsweep.io import atomic_path

log = logging.getLogger(__name__)

SPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
# Bytes a prepared array's data start at a multiple of: TensorFlow's (Eigen's) alignment, which
# it needs to use an array's memory in place (gradsweep.run._tensor) rather than copy it.
ALIGNMENT = 64


@dataclass(frozen=True, eq=False)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in SPLIT_KEYS}


def split_and_scale(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    n_val: int,
    max_value: float,
) -> Splits:
    """Last ``n_val`` training images become validation; images are flattened to float32 and
    divided by ``max_value``; labels become int64."""
    if not 0 < n_val < len(x_train):
        raise ValueError(f"n_val={n_val} must be in (0, {len(x_train)})")

    def scale(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).astype(np.float32) / np.float32(max_value)

    cut = len(x_train) - n_val
    return Splits(
        x_train=scale(x_train[:cut]),
        y_train=y_train[:cut].astype(np.int64),
        x_val=scale(x_train[cut:]),
        y_val=y_train[cut:].astype(np.int64),
        x_test=scale(x_test),
        y_test=y_test.astype(np.int64),
    )


def prepare(dataset: str, files: list[Path], out: Path) -> Splits:
    """Load, split, scale and write ``out`` (.npz with the six arrays) atomically."""

    sp = spec(dataset)
    splits = split_and_scale(*load_raw(dataset, files), n_val=sp.n_val, max_value=sp.max_value)
    # a file object: np.savez would append ".npz" to the temporary name
    with atomic_path(out) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **splits.arrays())  # uncompressed: every train job loads it
    log.info(
        "wrote %s: train %d, val %d, test %d",
        out,
        len(splits.x_train),
        len(splits.x_val),
        len(splits.x_test),
    )
    return splits


def load_prepared(path: Path) -> Splits:
    """Read a file written by :func:`prepare`, each array :data:`ALIGNMENT`-aligned."""
    arrays = read_npz(path, SPLIT_KEYS)
    return Splits(**{k: aligned(arrays.pop(k)) for k in SPLIT_KEYS})  # one copy at a time


def aligned(a: np.ndarray) -> np.ndarray:
    """``a`` if its data start at a multiple of :data:`ALIGNMENT` bytes, else such a copy."""
    if a.ctypes.data % ALIGNMENT == 0:
        return a
    buffer = np.empty(a.nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    out = buffer[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out
