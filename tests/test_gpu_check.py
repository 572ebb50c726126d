"""benchmarks/gpu_check.py: skips cleanly without a GPU, and with the CPU standing in for the
GPU runs every step (training both sides, comparing, timing) to a verdict."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradsweep.io import METRICS_SCHEMA, TRACES_SCHEMA, write_json, write_parquet

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks/gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def side(folder: Path, norms: list[float], acc: float, status: str = "ok") -> Path:
    """A train_batch output with one run: its manifest and cache entry."""
    entry = folder / "cache/a/key"
    n = len(norms)
    traces = pd.DataFrame(
        {"run_id": "a/r", "epoch": [0] * 2 + [1] * (n - 2), "step": list(range(n)),
         "layer": 1, "param": "kernel", "grad_norm": norms,
         "source": ["probe"] * 2 + ["step"] * (n - 2)}
    )  # fmt: skip
    for column in set(TRACES_SCHEMA.names) - set(traces):
        traces[column] = np.nan
    metrics = pd.DataFrame(
        {"run_id": "a/r", "epoch": [0, 1], "step": [0, 10], "wall_s": [0.0, 1.0]}
        | {f"{s}_{w}": [0.1, acc] for s in ("train", "val", "test") for w in ("loss", "acc")}
    )
    write_parquet(traces, entry / "traces.parquet", TRACES_SCHEMA)
    write_parquet(metrics, entry / "metrics.parquet", METRICS_SCHEMA)
    write_json({"runs": [{"run_id": "a/r", "cache": str(entry), "status": status}]},
               folder / "batch.json")  # fmt: skip
    return folder


NORMS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


@pytest.mark.parametrize(
    ("norms", "acc", "status", "ok"),
    [
        (NORMS, 0.9, "ok", True),
        ([1.001, 2.0, 3.03, 4.04, 5.0, 6.0], 0.91, "ok", True),  # small drift: tolerated
        ([1.05, 2.0, 3.0, 4.0, 5.0, 6.0], 0.9, "ok", False),  # initial norms 5 % off
        ([1.0, 2.0, 3.3, 4.4, 5.5, 6.6], 0.9, "ok", False),  # every step 10 % off
        (NORMS, 0.8, "ok", False),  # accuracy 0.1 off
        (NORMS, 0.9, "diverged", False),  # diverged on one device only
    ],
)
def test_comparison_flags_what_is_out_of_tolerance(tmp_path, norms, acc, status, ok):
    cpu = side(tmp_path / "cpu", NORMS, 0.9)
    gpu = side(tmp_path / "gpu", norms, acc, status)
    assert gpu_check.within_tolerance(gpu_check.compare(gpu, cpu)) is ok


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=1800
    )


@pytest.mark.slow
def test_without_a_gpu_the_check_skips_cleanly():
    result = run()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "skipped" in lines[0] and lines[-1] == "gpu=none skipped=1"


@pytest.mark.slow
def test_with_the_cpu_standing_in_every_step_runs(tmp_path):
    result = run("--stand-in", "cpu", "--steps", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    figures = dict(item.split("=", 1) for item in result.stdout.strip().splitlines()[-1].split())
    assert figures["stand_in"] == "1" and figures["gpu"] == "/device:CPU:0"
    # the same device twice: the same numbers, within any tolerance
    assert figures["traces_ok"] == "1" and float(figures["median_rel"]) == 0.0
    assert float(figures["gpu_epoch_s"]) > 0 and float(figures["cpu_epoch_s"]) > 0
    assert "smoke nets trained on /device:CPU:0 and on /device:CPU:0" in result.stdout
