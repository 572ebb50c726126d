"""Offline tests for gradsweep.data: readers, checksums, download, splits, file locations."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_helpers import copy_checkout, snakemake

from gradsweep import data
from gradsweep.config import ConfigError, check_sources
from gradsweep.data import DataError
from gradsweep.io import job_log

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
    hits: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        n = self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/hangup" or (self.path == "/flaky" and n == 1):  # no response at all
            self.close_connection = True
            return
        if self.path == "/missing":
            self.send_error(404)
            return
        self.send_response(200)
        if self.path != "/no-length":
            self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.path in ("/ok", "/flaky"):
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


@pytest.fixture
def refused_url() -> str:
    """A URL on a local port that nothing listens on: the connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist.npz"


def test_download_ok_with_progress_bar(
    tmp_path: Path, server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "raw" / "file.gz"
    data.download(f"{server}/ok", dest, sha(BODY))
    assert dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == ["file.gz"]
    assert "100%" in capsys.readouterr().err  # pooch's tqdm bar, on stderr


def test_download_checksum_mismatch_leaves_nothing(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "file.gz"
    wrong = sha(b"something else")
    with pytest.raises(DataError) as exc:
        data.download(f"{server}/ok", dest, wrong, retries=0, progressbar=False)
    msg = str(exc.value)
    assert f"{server}/ok" in msg and str(dest) in msg and "file.gz" in msg
    assert wrong in msg and sha(BODY) in msg and "Fix:" in msg
    assert list(tmp_path.iterdir()) == []


# The `/short` case passes the hash of what is received, so only the length check can catch it.
@pytest.mark.parametrize(
    ("route", "digest", "cause"),
    [
        ("/short", sha(HALF), "broke off"),
        ("/no-length", sha(BODY), "not the expected one"),
        ("/hangup", sha(BODY), "broke off"),
        ("/missing", sha(BODY), "HTTP 404"),
    ],
)
def test_download_truncated_leaves_nothing(
    tmp_path: Path, server: str, route: str, digest: str, cause: str
) -> None:
    dest = tmp_path / "file.gz"
    with pytest.raises(DataError) as exc:
        data.download(server + route, dest, digest, retries=0, progressbar=False)
    assert str(dest) in str(exc.value) and cause in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_download_keeps_existing_file_on_failure(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "file.gz"
    dest.write_bytes(b"old")
    with pytest.raises(DataError):
        data.download(f"{server}/short", dest, sha(BODY), retries=0, progressbar=False)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.gz"]


def test_download_retries_a_dropped_connection(
    tmp_path: Path, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    dest = tmp_path / "file.gz"
    caplog.set_level(logging.INFO)
    data.download(f"{server}/flaky", dest, sha(BODY), retries=1, progressbar=False)
    assert dest.read_bytes() == BODY and Handler.hits["/flaky"] == 2
    assert "Will attempt the download again" in caplog.text  # pooch's, through our logger


def test_unreachable_host_gives_one_message_with_the_fix(tmp_path: Path, refused_url: str) -> None:
    dest = tmp_path / "mnist.npz"
    with pytest.raises(DataError) as exc:
        data.download(refused_url, dest, sha(BODY), dataset="mnist", retries=0)
    msg = str(exc.value)
    host = refused_url.split("/")[2]
    assert msg.startswith(f"download of mnist.npz from {refused_url} failed (1 try): ")
    assert f"{host} refused the connection" in msg
    # the fix: the config key and every local form it accepts
    assert "Fix:" in msg and "`datasets.mnist.source`" in msg
    assert data.accepted_forms("mnist") in msg and "t10k-labels-idx1-ubyte" in msg
    assert "\n" not in msg and list(tmp_path.iterdir()) == []


def test_unresolvable_host_names_dns(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761), with or without a network
    url = "http://gradsweep-test.invalid/mnist.npz"
    with pytest.raises(DataError, match="cannot resolve the host name 'gradsweep-test.invalid'"):
        data.download(url, tmp_path / "mnist.npz", sha(BODY), dataset="mnist", retries=0)


@pytest.mark.slow
def test_offline_sweep_fails_with_one_message_and_no_traceback(
    tmp_path: Path, refused_url: str
) -> None:
    """The default sweep without network, end to end: the download job fails once, its log
    holds the message, Snakemake shows it once (show-failed-logs) with no Python traceback."""
    workdir = copy_checkout(tmp_path / "offline")
    registry = workdir / "src/gradsweep/data/datasets.py"
    bucket = refused_url.removesuffix("mnist.npz")
    registry.write_text(
        re.sub(r'KERAS_BUCKET = ".*"', f'KERAS_BUCKET = "{bucket}"', registry.read_text())
    )
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    for experiment in config["experiments"].values():
        experiment["dataset"] = "mnist"
    (workdir / "offline.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(
        workdir,
        "resources/data/mnist.npz",
        *("--cores", "1", "--configfile", "offline.yaml"),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    message = f"download of mnist.npz from {refused_url} failed (3 tries): "
    assert output.count(message) == 1, output
    assert "Error in rule download_raw" in output and "Traceback" not in output
    line = next(line for line in output.splitlines() if message in line)
    assert "refused the connection" in line and "`datasets.mnist.source`" in line
    assert data.accepted_forms("mnist") in line
    log = (workdir / "logs/download/mnist/mnist.npz.log").read_text()
    assert [line for line in log.splitlines() if " ERROR " in line] == [line]
    assert log.count("Will attempt the download again") == 2  # pooch's retries, one job
    assert not any((workdir / "resources").rglob("*.*")), "a partial file was left"


def test_job_log_holds_progress_and_the_one_message(
    tmp_path: Path, server: str, refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """What workflow/scripts/download.py does: a good download's progress bar and a failed
    one's message go to the job log; the failure exits 1 with no traceback."""
    log = tmp_path / "download.log"
    with job_log(str(log), DataError):
        data.download(f"{server}/ok", tmp_path / "ok.gz", sha(BODY))
    with pytest.raises(SystemExit) as exit_info, job_log(str(log), DataError):
        data.download(refused_url, tmp_path / "mnist.npz", sha(BODY), dataset="mnist", retries=1)
    assert exit_info.value.code == 1
    text = log.read_text()
    assert "100%" in text and "verified" in text  # tqdm's bar and our log line
    assert "Will attempt the download again 1 more time" in text  # pooch's retry
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "refused the connection" in errors[0] and "Fix:" in errors[0]
    assert "Traceback" not in text
    assert capsys.readouterr().err == ""  # nothing bypassed the log


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
    data.verify_raw_files("digits", [])  # what the prepare_data job does first
    s = data.prepare("digits", [], out)
    assert [p.name for p in out.parent.iterdir()] == ["digits.npz"]
    back = data.load_prepared(out)
    assert (len(back.x_train), len(back.x_val), len(back.x_test)) == (1077, 360, 360)
    for k, v in back.arrays().items():
        np.testing.assert_array_equal(v, s.arrays()[k])
        assert v.dtype == (np.float32 if k.startswith("x") else np.int64)
        assert v.ctypes.data % data.ALIGNMENT == 0 and v.flags.c_contiguous  # run._tensor
    assert back.x_train.shape == (1077, 64)
    assert back.x_train.min() == 0.0 and back.x_train.max() == 1.0
    digits = load_digits()
    np.testing.assert_allclose(back.x_val, digits.data[1077:1437] / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(back.y_test, digits.target[-360:])


TENSOR = r"""
import json, sys
import numpy as np
from gradsweep import data, run
run._setup_tensorflow(1)
x = data.load_prepared(sys.argv[1]).x_train[:50]  # as run._tensors slices it
buffer = np.zeros(x.nbytes + 8, np.uint8)
unaligned = buffer[4 : 4 + x.nbytes].view(np.float32).reshape(x.shape)  # 4 bytes off
unaligned[...] = x
original = x.copy()
tensors = [run._tensor(a) for a in (x, unaligned)]
equal = [bool(np.array_equal(t.numpy(), original)) for t in tensors]
x[0, 0] = unaligned[0, 0] = 42.0
print(json.dumps([float(t[0, 0]) for t in tensors] + equal))
"""


def test_prepared_arrays_become_tensors_over_their_own_memory(tmp_path: Path) -> None:
    """A training process holds the data set once: load_prepared's aligned arrays become
    tensors over the same memory (a change to the array shows in the tensor); an array
    TensorFlow cannot use in place (here 4 bytes off alignment) is copied."""
    out = tmp_path / "digits.npz"
    data.prepare("digits", [], out)
    result = subprocess.run(
        [sys.executable, "-c", TENSOR, str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    aliased, copied, *equal = json.loads(result.stdout.splitlines()[-1])
    assert aliased == 42.0 and copied != 42.0
    assert equal == [True, True]  # both held the arrays' values before the change


def test_load_prepared_missing_key_raises(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    np.savez(path, x_train=np.zeros((1, 4), np.float32))
    with pytest.raises(DataError, match="missing") as exc:
        data.load_prepared(path)
    assert str(path) in str(exc.value)


@pytest.fixture
def debian_fashion() -> None:
    """Skip without Debian's Fashion-MNIST, except on CI (.ci/run sets GRADSWEEP_REQUIRE_DATA=1
    after installing it): there a missing copy fails."""
    if not DEBIAN.is_dir():
        reason = f"needs {DEBIAN} (Debian package dataset-fashion-mnist)"
        if os.environ.get("GRADSWEEP_REQUIRE_DATA") == "1":
            pytest.fail(f"GRADSWEEP_REQUIRE_DATA=1 but {reason} is absent")
        pytest.skip(reason)


@pytest.mark.usefixtures("debian_fashion")
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
    monkeypatch.setattr(data.locate, "DEBIAN_FASHION_DIR", tmp_path / "absent")
    assert data.source_files("fashion_mnist", None) == []
    assert data.raw_files("fashion_mnist") == [
        f"resources/raw/fashion_mnist/{n}" for n in data.download_targets("fashion_mnist")
    ]
    assert data.raw_files("mnist") == ["resources/raw/mnist/mnist.npz"]
    assert data.raw_files("digits") == [] and data.download_targets("digits") == {}
    url, digest = data.download_targets("mnist")["mnist.npz"]
    assert url.endswith("/mnist.npz") and len(digest) == 64


def test_raw_files_local_fashion_folder(tmp_path: Path) -> None:
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
    with pytest.raises(DataError, match="bundled"):
        data.raw_files("digits", str(tmp_path))


# ------------------------------------------------------------------ MNIST in the forms people have
#
# A small made-up "MNIST" (12 training images of 4x4, 5 test images) in every accepted form,
# checked against a registry entry with its own hashes: no test needs the real MNIST.

LECUN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
LECUN += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass
class TinyMnist:
    arrays: tuple[np.ndarray, ...]  # x_train, y_train, x_test, y_test
    idx: dict[str, bytes]  # LeCun name -> uncompressed IDX bytes
    npz: bytes

    def folder(self, where: Path, *, gz: bool, dotted: bool = False) -> Path:
        """The four IDX files in ``where``: LeCun's names (``dotted``: as Kaggle spells
        them, ``train-images.idx3-ubyte``), gzipped like LeCun's and torchvision's or not."""
        where.mkdir(parents=True, exist_ok=True)
        for name, payload in self.idx.items():
            name = name.replace("-idx", ".idx") if dotted else name
            if gz:
                (where / f"{name}.gz").write_bytes(gzip.compress(payload, mtime=0))
            else:
                (where / name).write_bytes(payload)
        return where


def idx_bytes(arr: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture
def tiny_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TinyMnist:
    rng = np.random.default_rng(7)
    arrays = (
        rng.integers(0, 256, (12, 4, 4), dtype=np.uint8),
        rng.integers(0, 10, 12, dtype=np.uint8),
        rng.integers(0, 256, (5, 4, 4), dtype=np.uint8),
        rng.integers(0, 10, 5, dtype=np.uint8),
    )
    idx = {name: idx_bytes(a) for name, a in zip(LECUN, arrays, strict=True)}
    npz_path = tmp_path / "made-up.npz"
    np.savez(npz_path, **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays, strict=True)))
    npz = npz_path.read_bytes()
    npz_path.unlink()
    real = data.DATASETS["mnist"]
    test_spec = dataclasses.replace(
        real,
        files=(data.RawFile("mnist.npz", "http://127.0.0.1:9/mnist.npz", sha(npz)),),
        npz=data.RawFile("mnist.npz", "http://127.0.0.1:9/mnist.npz", sha(npz)),
        idx=tuple(
            data.RawFile(raw.name, content_sha256=sha(idx[raw.plain_name])) for raw in real.idx
        ),
        n_train_images=12,
        n_val=3,
    )
    assert [raw.plain_name for raw in real.idx] == list(LECUN)
    monkeypatch.setitem(data.DATASETS, "mnist", test_spec)
    return TinyMnist(arrays, idx, npz)


def prepared(files: list[Path], out: Path) -> data.Splits:
    data.verify_raw_files("mnist", files)
    data.prepare("mnist", files, out)
    return data.load_prepared(out)


def assert_tiny(splits: data.Splits, tiny: TinyMnist) -> None:
    """The oracle: the generated arrays, split and scaled by hand."""
    x_train, y_train, x_test, y_test = tiny.arrays
    np.testing.assert_allclose(splits.x_train, x_train[:9].reshape(9, 16) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(splits.x_val, x_train[9:].reshape(3, 16) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(splits.x_test, x_test.reshape(5, 16) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(splits.y_train, y_train[:9])
    np.testing.assert_array_equal(splits.y_val, y_train[9:])
    np.testing.assert_array_equal(splits.y_test, y_test)


@pytest.mark.parametrize(
    ("gz", "dotted"), [(True, False), (False, False), (False, True)], ids=["gz", "plain", "dotted"]
)
def test_mnist_idx_folder_lecun_names(
    tmp_path: Path, tiny_mnist: TinyMnist, gz: bool, dotted: bool
) -> None:
    folder = tiny_mnist.folder(tmp_path / "lecun", gz=gz, dotted=dotted)
    files = data.source_files("mnist", str(folder))
    names = [n.replace("-idx", ".idx") if dotted else n for n in LECUN]
    assert [p.name for p in files] == [n + (".gz" if gz else "") for n in names]
    assert data.raw_files("mnist", str(folder)) == [str(p) for p in files]
    assert_tiny(prepared(files, tmp_path / "mnist.npz"), tiny_mnist)


@pytest.mark.parametrize("point_at", ["root", "root/MNIST", "root/MNIST/raw"])
def test_mnist_torchvision_layout(tmp_path: Path, tiny_mnist: TinyMnist, point_at: str) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"  # torchvision keeps the .gz and the extracted files
    tiny_mnist.folder(raw, gz=True)
    tiny_mnist.folder(raw, gz=False)
    files = data.source_files("mnist", str(tmp_path / point_at))
    assert [p.parent for p in files] == [raw] * 4
    assert_tiny(prepared(files, tmp_path / "mnist.npz"), tiny_mnist)


@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "keras-cache-folder"])
def test_mnist_npz_still_accepted(tmp_path: Path, tiny_mnist: TinyMnist, as_folder: bool) -> None:
    path = tmp_path / ".keras" / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(tiny_mnist.npz)
    files = data.source_files("mnist", str(path.parent if as_folder else path))
    assert files == [path]
    assert_tiny(prepared(files, tmp_path / "prepared.npz"), tiny_mnist)


def test_mnist_idx_with_other_content_is_rejected(tmp_path: Path, tiny_mnist: TinyMnist) -> None:
    folder = tiny_mnist.folder(tmp_path / "lecun", gz=True)
    changed = bytearray(tiny_mnist.idx["t10k-labels-idx1-ubyte"])
    changed[-1] = (changed[-1] + 1) % 10  # one test label differs: a different version
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(changed)))
    files = data.source_files("mnist", str(folder))  # names are fine
    with pytest.raises(DataError) as exc:
        data.verify_raw_files("mnist", files)
    msg = str(exc.value)
    expected = data.DATASETS["mnist"].idx[3].content_sha256
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in msg and str(expected) in msg


def test_partial_mnist_folder_lists_what_was_found_and_the_forms(
    tmp_path: Path, tiny_mnist: TinyMnist
) -> None:
    folder = tiny_mnist.folder(tmp_path / "lecun", gz=True)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.SourceError) as exc:
        data.source_files("mnist", str(folder))
    msg = str(exc.value)
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in msg  # found
    assert "not t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in msg  # missing
    assert msg.endswith("Accepted: " + data.accepted_forms("mnist"))
    for form in ("mnist.npz", "t10k-labels-idx1-ubyte", ".gz or uncompressed", "MNIST/raw"):
        assert form in exc.value.allowed


def test_wrong_mnist_folder_lists_its_files(tmp_path: Path, tiny_mnist: TinyMnist) -> None:
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "cifar-10.tar.gz").write_bytes(b"")
    with pytest.raises(data.SourceError, match="holds cifar-10.tar.gz, notes.txt. Accepted: "):
        data.source_files("mnist", str(tmp_path))
    with pytest.raises(data.SourceError, match="no such file or folder"):
        data.source_files("mnist", str(tmp_path / "absent"))


def test_config_names_the_key_and_the_accepted_forms(tmp_path: Path, tiny_mnist: TinyMnist) -> None:
    folder = tiny_mnist.folder(tmp_path / "lecun", gz=False)
    (folder / "train-labels-idx1-ubyte").unlink()
    exp = {"dataset": "mnist", "grid": {"depth": [1], "width": [4]}}
    config = {"datasets": {"mnist": {"source": str(folder)}}, "experiments": {"e": exp}}
    with pytest.raises(ConfigError) as exc:
        check_sources(config)
    msg = str(exc.value)
    assert msg.startswith(f"experiment 'e': datasets.mnist.source = '{folder}' cannot be used (")
    assert "but not train-labels-idx1-ubyte" in msg
    assert msg.endswith("; allowed: " + data.accepted_forms("mnist"))
    tiny_mnist.folder(folder, gz=True)
    check_sources(config)  # complete again: no error
