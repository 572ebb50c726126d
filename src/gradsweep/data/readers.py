"""File readers: IDX (plain or gzip), Keras' ``mnist.npz``, scikit-learn's digits."""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from gradsweep.data.datasets import DIGITS_N_TEST, FIX, DataError, spec
from gradsweep.data.locate import match

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic number."""
    try:
        data = Path(path).read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read or decompress ({exc}). {FIX}") from exc
    return data


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or gzip) into an array of its native dtype and shape."""
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex()}). {FIX}")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: bad IDX header (dtype 0x{code:02x}, {ndim} dims). {FIX}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header. {FIX}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: header says {dims} of {dtype} ({expected} bytes), file "
            f"has {len(data)} bytes (truncated or corrupt). {FIX}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` file (no pickles), or DataError naming the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}. {FIX}")
            return {k: npz[k] for k in keys}
    except DataError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: unreadable or corrupt .npz ({exc}). {FIX}") from exc


def read_mnist_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read Keras' ``mnist.npz`` into (x_train, y_train, x_test, y_test)."""
    arrays = read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def load_raw(
    dataset: str, files: list[Path]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw (x_train, y_train, x_test, y_test): uint8 images (n, h, w), int64 labels.

    ``files``: one ``.npz`` (Keras' mnist.npz) or the four IDX files, as ``locate`` finds them.
    """
    sp = spec(dataset)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y, cut = digits.images.astype(np.uint8), digits.target, -DIGITS_N_TEST
        xtr, ytr, xte, yte = x[:cut], y[:cut], x[cut:], y[cut:]
        where = "sklearn load_digits"
    else:
        paths = [path for path, _ in match(sp, files)]
        if len(paths) == 1:
            xtr, ytr, xte, yte = read_mnist_npz(paths[0])
        else:
            xtr, ytr, xte, yte = (read_idx(p) for p in paths)
        where = ", ".join(map(str, paths))
    for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.dtype != np.uint8:
            raise DataError(
                f"{where}: unexpected {name} arrays: images {x.shape} {x.dtype}, labels "
                f"{y.shape} (want uint8 (n, h, w) and (n,)). {FIX}"
            )
    if len(xtr) != sp.n_train_images:
        raise DataError(
            f"{where}: {len(xtr)} training images, the registry expects {sp.n_train_images} "
            f"for {dataset}. {FIX}"
        )
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)
