"""Run the real workflow in a throwaway copy of the repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    for part in ("workflow", "config"):
        shutil.copytree(REPO / part, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["snakemake", *args], cwd=workdir, capture_output=True, text=True, timeout=1800
    )
    if check and result.returncode:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result
