"""Fetching and hashing: downloads through pooch, and sha256 checks of raw files."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from gradsweep.data.datasets import FIX, DataError, RawFile, spec
from gradsweep.data.locate import accepted_forms, match
from gradsweep.data.readers import read_bytes

log = logging.getLogger(__name__)

DOWNLOAD_RETRIES = 2  # pooch tries every download 1 + this many times (hash mismatch included)
TIMEOUT_S = 60  # seconds without a byte from the server before an attempt fails


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(path: Path | str, expected: str, actual: str) -> DataError:
    return DataError(
        f"{path}: sha256 mismatch (expected {expected}, got {actual}); the file is corrupt, "
        f"truncated or a different version. {FIX}"
    )


def verify_sha256(path: Path, expected: str) -> None:
    """Raise DataError naming ``path`` unless its sha256 is ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. {FIX}")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise _mismatch(path, expected, actual)


def verify_raw_file(path: Path, raw: RawFile) -> None:
    """Check a raw file by its own hash, or (IDX files) by the hash of its decompressed payload.

    Accepts the upstream file, a recompressed copy and an uncompressed copy.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. {FIX}")
    actual = sha256_file(path)
    if actual in (raw.sha256, raw.content_sha256):  # uncompressed: the file is the payload
        return
    if raw.content_sha256 is None:
        raise _mismatch(path, str(raw.sha256), actual)
    payload = hashlib.sha256(read_bytes(path)).hexdigest()
    if payload != raw.content_sha256:
        served = f"{raw.sha256} as served, or " if raw.sha256 else ""
        raise DataError(
            f"{path}: not the expected {raw.plain_name}: sha256 {actual} (decompressed "
            f"{payload}); expected {served}decompressed {raw.content_sha256}. {FIX}"
        )


def verify_raw_files(dataset: str, files: list[Path]) -> None:
    """Check each raw file of ``dataset`` against the registry (by file or payload hash)."""
    for path, raw in match(spec(dataset), files):
        verify_raw_file(path, raw)


# ------------------------------------------------------------------------------- download


@contextmanager
def _pooch_logs_here() -> Iterator[None]:
    """Send pooch's messages (downloading, retrying) through this module's logger.

    pooch's logger is a stand-alone ``logging.Logger`` with its own stderr handler, outside the
    logging tree; while downloading, its records go to our handlers (e.g. the job log) instead.
    """
    import pooch

    plog = pooch.get_logger()
    saved = plog.handlers[:]

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log.handle(record)

    plog.handlers[:] = [Forward()]
    try:
        yield
    finally:
        plog.handlers[:] = saved


def _cause(exc: BaseException, url: str) -> str:
    """The root cause of a failed download, in words: DNS failure, refused connection, …."""
    import requests

    host = urlsplit(url).netloc  # with the port
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:  # requests wraps urllib3's error, which wraps the socket's
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    names = {type(e).__name__ for e in seen}
    innermost = seen[-1]
    if "gaierror" in names or "NameResolutionError" in names:
        name = urlsplit(url).hostname
        return f"cannot resolve the host name {name!r}: no network, or a DNS failure"
    if any(isinstance(e, ConnectionRefusedError) for e in seen):
        return f"{host} refused the connection"
    if isinstance(exc, requests.Timeout) or any(isinstance(e, TimeoutError) for e in seen):
        return f"no answer from {host} within {TIMEOUT_S} s"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"the server answered HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.ConnectionError):
        return f"the connection broke off before the whole file arrived ({innermost})"
    if isinstance(exc, ValueError) and "does not match the known hash" in str(exc):  # pooch's
        return f"the file that arrived is not the expected one ({exc})"
    return f"{type(innermost).__name__}: {innermost}"


def download(
    url: str,
    dest: Path,
    sha256: str,
    *,
    dataset: str | None = None,
    retries: int = DOWNLOAD_RETRIES,
    progressbar: bool = True,
) -> None:
    """Fetch ``url`` to ``dest`` with pooch: streamed to a temporary file beside ``dest``,
    checked against ``sha256``, renamed into place only then; retried ``retries`` times.

    Any failure (no network, refused connection, HTTP error, broken-off transfer, wrong hash)
    raises one DataError naming the file, the URL and the cause, then the fix: a local copy
    (``datasets.<dataset>.source`` and the forms it accepts). An existing ``dest`` is kept.
    The progress bar (tqdm) goes to ``sys.stderr``: the job log, under ``gradsweep.io.job_log``.
    """
    import pooch
    import requests

    dest = Path(dest)
    log.info("downloading %s -> %s", url, dest)
    fetcher = pooch.create(
        path=dest.parent,
        base_url="",
        registry={dest.name: f"sha256:{sha256.lower()}"},
        urls={dest.name: url},
        retry_if_failed=retries,
    )
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=TIMEOUT_S)
    try:
        with _pooch_logs_here():
            fetcher.fetch(dest.name, downloader=downloader)
    except (requests.RequestException, ValueError, OSError) as exc:
        tries = f"{retries + 1} tries" if retries else "1 try"
        source = (
            f"download it by hand and set `datasets.{dataset}.source` in the config to the "
            f"local copy: {accepted_forms(dataset)}"
            if dataset
            else "download it by hand and point the dataset's `source` in the config at it"
        )
        raise DataError(
            f"download of {dest.name} from {url} failed ({tries}): {_cause(exc, url)}. "
            f"Nothing was written to {dest}. Fix: re-run when the network is back; or "
            f"{source}."
        ) from exc
    log.info("verified %s (%d bytes, sha256 %s)", dest, dest.stat().st_size, sha256.lower())
