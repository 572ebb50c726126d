"""gradsweep.io: the one atomic-write helper and the job-log wrapper of job scripts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gradsweep.io import atomic_path, job_log


def test_atomic_path_renames_only_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "table.parquet"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.exists() and not dest.exists()
        tmp.write_text("new")
    assert dest.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert dest.read_text() == "new"  # the old file stays whole
    assert [p.name for p in dest.parent.iterdir()] == ["table.parquet"]


def test_atomic_path_files_get_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644  # not mkstemp's 0600


def test_job_log_keeps_the_traceback_of_an_unexpected_error(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    with pytest.raises(ZeroDivisionError), job_log(str(log), KeyError):
        _ = 1 / 0
    text = log.read_text()
    assert "ERROR gradsweep: job failed" in text and "Traceback" in text
    assert "ZeroDivisionError" in text
