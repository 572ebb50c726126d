"""Datasets: registry, verified download, raw readers, train/val/test split and scaling.

Raw files are checked by sha256 before use. Every file this module writes goes to a temporary
name in the destination folder and is renamed into place only when complete (and verified), so
a file that exists is whole.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import struct
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

log = logging.getLogger(__name__)

KERAS_BUCKET = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW_DIR = "resources/raw"
SPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
_FIX = (
    "Fix: delete the file and re-run, or point the dataset's `source` in the config at a "
    "verified local copy, then re-run."
)


class DataError(ValueError):
    """A data file is missing, corrupt, truncated or not the expected version."""


@dataclass(frozen=True)
class RawFile:
    """One raw file of a dataset.

    ``sha256`` is the hash of the file exactly as served at ``url``. For gzip files,
    ``content_sha256`` is the hash of the decompressed payload: it also accepts copies that
    were recompressed (e.g. Debian's ``dataset-fashion-mnist``) or stored uncompressed.
    """

    name: str
    url: str
    sha256: str
    content_sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: tuple[RawFile, ...]  # empty: bundled with a library, nothing to fetch
    n_val: int  # the last n_val training images become the validation set
    max_value: float  # pixel value that maps to 1.0


def _fashion(name: str, sha256: str, content_sha256: str) -> RawFile:
    return RawFile(name, KERAS_BUCKET + name, sha256, content_sha256)


# Fashion-MNIST hashes: `sha256` is of the upstream .gz (Zalando's files, md5s as published in
# the zalandoresearch/fashion-mnist README; same sizes as the Keras bucket copies).
# `content_sha256` is of the decompressed IDX file; Debian's recompressed copies match it.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist",
        (
            RawFile(
                "mnist.npz",
                KERAS_BUCKET + "mnist.npz",
                "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
            ),
        ),
        n_val=10_000,
        max_value=255.0,
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        (
            _fashion(
                "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            _fashion(
                "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            _fashion(
                "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            _fashion(
                "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        ),
        n_val=10_000,
        max_value=255.0,
    ),
    "digits": DatasetSpec("digits", (), n_val=360, max_value=16.0),
}
DIGITS_N_TEST = 360


def spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}") from None


# --------------------------------------------------------------------------- files and hashes


@contextmanager
def _atomic_file(dest: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """Yield an open temporary file next to ``dest``; it is removed unless the caller renames it.

    The caller must ``os.replace(tmp, dest)`` inside the ``with`` block once the file is good.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "xb") rather than mkstemp: the file gets the umask's permissions, not 0600.
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with tmp.open("xb") as fh:
            yield fh, tmp
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(path: Path | str, expected: str, actual: str) -> DataError:
    return DataError(
        f"{path}: sha256 mismatch (expected {expected}, got {actual}); the file is corrupt, "
        f"truncated or a different version. {_FIX}"
    )


def verify_sha256(path: Path, expected: str) -> None:
    """Raise DataError naming ``path`` unless its sha256 is ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. {_FIX}")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise _mismatch(path, expected, actual)


def verify_raw_file(path: Path, raw: RawFile) -> None:
    """Check a raw file by its own hash, or (gzip files) by the hash of its payload.

    Accepts the upstream file, a recompressed copy and an uncompressed copy.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. {_FIX}")
    actual = sha256_file(path)
    if actual == raw.sha256:
        return
    if raw.content_sha256 is None:
        raise _mismatch(path, raw.sha256, actual)
    payload = hashlib.sha256(_read_bytes(path)).hexdigest()
    if payload != raw.content_sha256:
        raise DataError(
            f"{path}: not the expected {raw.name}: sha256 {actual} (decompressed {payload}); "
            f"expected {raw.sha256} (decompressed {raw.content_sha256}). {_FIX}"
        )


def download(url: str, dest: Path, sha256: str) -> None:
    """Stream ``url`` to ``dest``; rename into place only when complete and verified."""
    dest = Path(dest)
    log.info("downloading %s -> %s", url, dest)
    with _atomic_file(dest) as (fh, tmp):
        digest = hashlib.sha256()
        size = 0
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                expected_size = resp.headers.get("Content-Length")
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeout, IncompleteRead
            raise DataError(
                f"{dest}: download of {url} failed after {size} bytes ({exc!r}); nothing was "
                f"written. Fix: re-run, or point the dataset's `source` in the config at a "
                f"local copy."
            ) from exc
        if expected_size is not None and int(expected_size) != size:
            raise DataError(
                f"{dest}: download of {url} truncated ({size} of {expected_size} bytes); "
                f"nothing was written. Fix: re-run."
            )
        actual = digest.hexdigest()
        if actual != sha256.lower():
            raise DataError(
                f"{dest}: sha256 mismatch for {url} (expected {sha256}, got {actual}); the "
                f"download was discarded and nothing was written. Fix: re-run; if it persists "
                f"the server's file changed: fetch it by hand, check it, and point the "
                f"dataset's `source` in the config at that local copy."
            )
        fh.close()
        os.replace(tmp, dest)
    log.info("verified %s (%d bytes, sha256 %s)", dest, size, actual)


# --------------------------------------------------------------------------------- readers

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic number."""
    try:
        data = Path(path).read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read or decompress ({exc}). {_FIX}") from exc
    return data


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or gzip) into an array of its native dtype and shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex()}). {_FIX}")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: bad IDX header (dtype 0x{code:02x}, {ndim} dims). {_FIX}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header. {_FIX}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: header says {dims} of {dtype} ({expected} bytes), file "
            f"has {len(data)} bytes (truncated or corrupt). {_FIX}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_mnist_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read Keras' ``mnist.npz`` into (x_train, y_train, x_test, y_test)."""
    arrays = _read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}. {_FIX}")
            return {k: npz[k] for k in keys}
    except DataError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: unreadable or corrupt .npz ({exc}). {_FIX}") from exc


def _match(sp: DatasetSpec, files: list[Path]) -> list[Path]:
    """``files`` in registry order, matched by name (``.gz`` optional); a single-file dataset
    accepts one file of any name (e.g. a local ``source`` copy)."""
    files = [Path(f) for f in files]
    if len(sp.files) == 1 and len(files) == 1:
        return files
    out = []
    for raw in sp.files:
        names = (raw.name, raw.name.removesuffix(".gz"))
        hits = [f for f in files if f.name in names]
        if len(hits) != 1:
            raise DataError(
                f"{sp.name}: need exactly one file named {raw.name} among {list(map(str, files))}"
            )
        out.append(hits[0])
    return out


def load_raw(
    dataset: str, files: list[Path]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw (x_train, y_train, x_test, y_test): uint8 images (n, h, w), int64 labels."""
    sp = spec(dataset)
    if dataset == "mnist":
        (path,) = _match(sp, files)
        xtr, ytr, xte, yte = read_mnist_npz(path)
        where = str(path)
    elif dataset == "fashion_mnist":
        paths = _match(sp, files)
        xtr, ytr, xte, yte = (read_idx(p) for p in paths)
        where = ", ".join(map(str, paths))
    elif dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y, cut = digits.images.astype(np.uint8), digits.target, -DIGITS_N_TEST
        xtr, ytr, xte, yte = x[:cut], y[:cut], x[cut:], y[cut:]
        where = "sklearn load_digits"
    else:  # pragma: no cover - spec() already rejected it
        raise DataError(f"no reader for dataset {dataset!r}")
    for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.dtype != np.uint8:
            raise DataError(
                f"{where}: unexpected {name} arrays: images {x.shape} {x.dtype}, labels "
                f"{y.shape} (want uint8 (n, h, w) and (n,)). {_FIX}"
            )
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


# ----------------------------------------------------------------------------- splits


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
    out = Path(out)
    with _atomic_file(out) as (fh, tmp):
        np.savez(fh, **splits.arrays())  # uncompressed: every train job loads it
        fh.close()
        os.replace(tmp, out)
    log.info(
        "wrote %s: train %d, val %d, test %d",
        out,
        len(splits.x_train),
        len(splits.x_val),
        len(splits.x_test),
    )
    return splits


def load_prepared(path: Path) -> Splits:
    """Read a file written by :func:`prepare`."""
    return Splits(**_read_npz(path, SPLIT_KEYS))


# ------------------------------------------------------------------------ where files are


def download_targets(dataset: str) -> dict[str, tuple[str, str]]:
    """``{filename: (url, sha256)}`` of the files a download rule fetches ({} for digits)."""
    return {f.name: (f.url, f.sha256) for f in spec(dataset).files}


def source_files(dataset: str, source: str | None) -> list[Path]:
    """Local raw files for ``dataset``, or ``[]`` if they must be downloaded (or none needed).

    ``source``: for mnist a local ``mnist.npz``; for fashion_mnist a folder holding the four IDX
    files (``.gz`` or uncompressed). Without it, fashion_mnist uses Debian's
    ``dataset-fashion-mnist`` copies if all four are installed.
    """
    sp = spec(dataset)
    if not sp.files:
        if source:
            raise DataError(f"dataset {dataset!r} is bundled with its library; drop `source`")
        return []
    if source:
        src = Path(source)
        if dataset == "mnist":
            if not src.is_file():
                raise DataError(f"{src}: mnist source must be an existing mnist.npz file")
            return [src]
        if not src.is_dir():
            raise DataError(f"{src}: {dataset} source must be a folder with the IDX files")
        found = _find_in(src, sp)
        if found is None:
            names = ", ".join(f.name for f in sp.files)
            raise DataError(f"{src}: {dataset} source folder must contain {names}")
        return found
    if dataset == "fashion_mnist":
        return _find_in(DEBIAN_FASHION_DIR, sp) or []
    return []


def _find_in(folder: Path, sp: DatasetSpec) -> list[Path] | None:
    out = []
    for f in sp.files:
        hits = [p for p in (folder / f.name, folder / f.name.removesuffix(".gz")) if p.is_file()]
        if not hits:
            return None
        out.append(hits[0])
    return out


def raw_files(dataset: str, source: str | None = None, raw_dir: str = RAW_DIR) -> list[str]:
    """Paths the prepare step reads: local copies, else ``<raw_dir>/<dataset>/<filename>``."""
    local = source_files(dataset, source)
    if local:
        return [str(p) for p in local]
    return [f"{raw_dir}/{dataset}/{name}" for name in download_targets(dataset)]


def verify_raw_files(dataset: str, files: list[Path]) -> None:
    """Check each raw file of ``dataset`` against the registry (by file or payload hash)."""
    sp = spec(dataset)
    for path, raw in zip(_match(sp, files), sp.files, strict=True):
        verify_raw_file(path, raw)
