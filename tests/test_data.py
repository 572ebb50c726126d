"""Offline tests for gradsweep.data: readers, checksums, download, splits, file locations."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gradsweep import data
from gradsweep.data import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, arr: np.ndarray, *, code: int = 0x08) -> Path:
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ------------------------------------------------------------------------------- readers


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    got = data.read_idx(write_idx(tmp_path / name, images))
    assert got.dtype == np.uint8 and got.shape == (5, 3, 4)
    np.testing.assert_array_equal(got, images)


def test_idx_round_trip_int32_labels(tmp_path: Path) -> None:
    labels = np.array([7, -1, 70000], dtype=np.int32)
    got = data.read_idx(write_idx(tmp_path / "labels.gz", labels, code=0x0C))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, labels)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_raises(tmp_path: Path, gz: bool) -> None:
    raw = struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + bytes(10 * 28 * 28)
    path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
    blob = gzip.compress(raw) if gz else raw
    path.write_bytes(blob[: len(blob) - 100])
    with pytest.raises(DataError, match="Fix:") as exc:
        data.read_idx(path)
    assert str(path) in str(exc.value)


def test_idx_trailing_bytes_raise(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "y-idx1-ubyte", np.arange(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="size mismatch") as exc:
        data.read_idx(path)
    assert str(path) in str(exc.value)


def test_idx_wrong_magic_raises(tmp_path: Path) -> None:
    path = tmp_path / "not-idx.gz"
    path.write_bytes(gzip.compress(b"PK\x03\x04" + bytes(100)))
    with pytest.raises(DataError, match="magic") as exc:
        data.read_idx(path)
    assert str(path) in str(exc.value)


def test_idx_bad_dtype_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad-dtype"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x42, 1, 1) + b"\x00")
    with pytest.raises(DataError, match="dtype 0x42") as exc:
        data.read_idx(path)
    assert str(path) in str(exc.value)


def test_corrupt_npz_raises(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    z = np.zeros((3, 28, 28), np.uint8)
    np.savez_compressed(good, x_train=z, y_train=np.zeros(3), x_test=z, y_test=np.zeros(3))
    bad = tmp_path / "mnist.npz"
    blob = good.read_bytes()
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError) as exc:
        data.read_mnist_npz(bad)
    assert str(bad) in str(exc.value)


def test_mnist_npz_missing_key_raises(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="missing") as exc:
        data.read_mnist_npz(path)
    assert str(path) in str(exc.value)


# ------------------------------------------------------------------------------- checksums


def test_verify_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    data.verify_sha256(path, sha(b"hello"))
    with pytest.raises(DataError) as exc:
        data.verify_sha256(path, sha(b"other"))
    msg = str(exc.value)
    assert str(path) in msg and sha(b"other") in msg and sha(b"hello") in msg
    assert "delete" in msg and "source" in msg and "re-run" in msg


def test_verify_raw_file_accepts_recompressed_and_plain_copies(tmp_path: Path) -> None:
    payload = struct.pack(">BBBBI", 0, 0, 8, 1, 3) + b"\x01\x02\x03"
    upstream = gzip.compress(payload, compresslevel=9, mtime=0)
    raw = data.RawFile("t-idx1-ubyte.gz", "http://x/t-idx1-ubyte.gz", sha(upstream), sha(payload))
    recompressed = gzip.compress(payload, compresslevel=1, mtime=123)
    assert recompressed != upstream
    for blob in (upstream, recompressed, payload):
        path = tmp_path / "t-idx1-ubyte.gz"
        path.write_bytes(blob)
        data.verify_raw_file(path, raw)
    path.write_bytes(gzip.compress(payload[:-1] + b"\x09"))
    with pytest.raises(DataError) as exc:
        data.verify_raw_file(path, raw)
    assert str(path) in str(exc.value) and raw.content_sha256 in str(exc.value)


# ------------------------------------------------------------------------------- download

BODY = bytes(range(256)) * 400  # 100 kB
HALF = BODY[: len(BODY) // 2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path == "/hangup":  # close without any response
            self.close_connection = True
            return
        self.send_response(200)
        if self.path != "/no-length":
            self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.path == "/ok":
            self.wfile.write(BODY)
        else:  # /short and /no-length: half the body, then close
            self.wfile.write(HALF)
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_ok(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "raw" / "file.gz"
    data.download(f"{server}/ok", dest, sha(BODY))
    assert dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == ["file.gz"]


def test_download_checksum_mismatch_leaves_nothing(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "file.gz"
    wrong = sha(b"something else")
    with pytest.raises(DataError) as exc:
        data.download(f"{server}/ok", dest, wrong)
    msg = str(exc.value)
    assert str(dest) in msg and wrong in msg and sha(BODY) in msg and "re-run" in msg
    assert list(tmp_path.iterdir()) == []


# The `/short` case passes the hash of what is received, so only the length check can catch it.
@pytest.mark.parametrize(
    ("route", "digest"), [("/short", sha(HALF)), ("/no-length", sha(BODY)), ("/hangup", sha(BODY))]
)
def test_download_truncated_leaves_nothing(
    tmp_path: Path, server: str, route: str, digest: str
) -> None:
    dest = tmp_path / "file.gz"
    with pytest.raises(DataError) as exc:
        data.download(server + route, dest, digest)
    assert str(dest) in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_download_keeps_existing_file_on_failure(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "file.gz"
    dest.write_bytes(b"old")
    with pytest.raises(DataError):
        data.download(f"{server}/short", dest, sha(BODY))
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.gz"]


# ------------------------------------------------------------------------------- splits


def test_split_and_scale_takes_last_training_images_as_validation() -> None:
    x = np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2)
    y = np.arange(10)
    s = data.split_and_scale(x, y, x[:3], y[:3], n_val=4, max_value=255.0)
    np.testing.assert_array_equal(s.y_train, np.arange(6))
    np.testing.assert_array_equal(s.y_val, np.arange(6, 10))
    np.testing.assert_array_equal(s.y_test, np.arange(3))
    assert s.x_val.shape == (4, 4) and s.x_val.dtype == np.float32 and s.y_val.dtype == np.int64
    np.testing.assert_allclose(s.x_val[0], x[6].ravel() / 255.0, rtol=1e-6)


def test_digits_prepare_round_trip(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    out = tmp_path / "prepared" / "digits.npz"
    s = data.prepare("digits", [], out)
    assert [p.name for p in out.parent.iterdir()] == ["digits.npz"]
    back = data.load_prepared(out)
    assert (len(back.x_train), len(back.x_val), len(back.x_test)) == (1077, 360, 360)
    for k, v in back.arrays().items():
        np.testing.assert_array_equal(v, s.arrays()[k])
        assert v.dtype == (np.float32 if k.startswith("x") else np.int64)
    assert back.x_train.shape == (1077, 64)
    assert back.x_train.min() == 0.0 and back.x_train.max() == 1.0
    digits = load_digits()
    np.testing.assert_allclose(back.x_val, digits.data[1077:1437] / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(back.y_test, digits.target[-360:])


def test_load_prepared_missing_key_raises(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    np.savez(path, x_train=np.zeros((1, 4), np.float32))
    with pytest.raises(DataError, match="missing") as exc:
        data.load_prepared(path)
    assert str(path) in str(exc.value)


@pytest.mark.skipif(
    not DEBIAN.is_dir(), reason=f"{DEBIAN} absent (Debian package dataset-fashion-mnist)"
)
def test_debian_fashion_mnist() -> None:
    files = data.source_files("fashion_mnist", None)
    assert files and all(p.parent == DEBIAN for p in files)
    data.verify_raw_files("fashion_mnist", files)
    s = data.split_and_scale(*data.load_raw("fashion_mnist", files), n_val=10_000, max_value=255)
    assert s.x_train.shape == (50_000, 784)
    assert s.x_val.shape == (10_000, 784) and s.x_test.shape == (10_000, 784)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (50_000, 10_000, 10_000)
    for x in (s.x_train, s.x_val, s.x_test):
        assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(s.y_train)) == set(range(10))


# ------------------------------------------------------------------------------- locations


def test_raw_files_download_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "absent")
    assert data.source_files("fashion_mnist", None) == []
    assert data.raw_files("fashion_mnist") == [
        f"resources/raw/fashion_mnist/{n}" for n in data.download_targets("fashion_mnist")
    ]
    assert data.raw_files("mnist") == ["resources/raw/mnist/mnist.npz"]
    assert data.raw_files("digits") == [] and data.download_targets("digits") == {}
    url, digest = data.download_targets("mnist")["mnist.npz"]
    assert url.endswith("/mnist.npz") and len(digest) == 64


def test_raw_files_local_source(tmp_path: Path) -> None:
    names = list(data.download_targets("fashion_mnist"))
    for n in names[:3]:
        (tmp_path / n).write_bytes(b"")
    (tmp_path / names[3].removesuffix(".gz")).write_bytes(b"")  # an uncompressed copy
    got = data.raw_files("fashion_mnist", str(tmp_path))
    assert got == [str(tmp_path / n) for n in names[:3]] + [
        str(tmp_path / names[3].removesuffix(".gz"))
    ]
    (tmp_path / names[0]).unlink()
    with pytest.raises(DataError, match=str(tmp_path)):
        data.raw_files("fashion_mnist", str(tmp_path))
    npz = tmp_path / "my-mnist.npz"
    npz.write_bytes(b"")
    assert data.raw_files("mnist", str(npz)) == [str(npz)]
    with pytest.raises(DataError):
        data.raw_files("mnist", str(tmp_path / "missing.npz"))
