"""What a ``train`` job spends before and around its SGD: Python, imports, data, compiling.

    python benchmarks/job_overhead.py                 # smoke run (digits) and a Fashion-MNIST run
    python benchmarks/job_overhead.py --repeats 5 --dataset digits

Each measurement is a fresh ``python`` process, as Snakemake starts one per job, that runs
one run of ``config/smoke.yaml`` (or the same net on Fashion-MNIST, 1 epoch) through
``gradsweep.run.train_run`` and timestamps its phases:

  start/exit interpreter start-up before the job's first line, and shutdown after its last
             (Python's final garbage collection of TensorFlow's objects)
  libs       import numpy, pandas, pyarrow and gradsweep.run
  tensorflow import tensorflow and keras (what ``_setup_tensorflow`` pulls in)
  data       ``load_prepared`` of the job's ``.npz``
  epoch 0    ``train_run`` up to its first log line: building the net, and tracing and
             compiling the probe, diagnostics and evaluation functions on their first call
  epoch 1    the first training epoch: XLA-compiling the epoch, then running it
  later      each later epoch (steady state); ``epoch 1 − later`` is the compile time
  finish     writing traces, metrics and run.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy, pandas, pyarrow.parquet
from gradsweep.run import train_run
t1 = time.perf_counter()
import tensorflow, keras
t2 = time.perf_counter()
from gradsweep.data import load_prepared
load_prepared(sys.argv[2])
t3 = time.perf_counter()
marks = []
train_run(json.loads(sys.argv[1]), data=sys.argv[2], out_dir=sys.argv[3], threads=1,
          log=lambda line: marks.append(time.perf_counter()))
t4 = time.perf_counter()
print(json.dumps({"t0": t0, "libs": t1 - t0, "tensorflow": t2 - t1, "data": t3 - t2,
                  "marks": [m - t3 for m in marks], "total": t4 - t0}))
"""


def prepare_data(dataset: str, folder: Path) -> Path:
    from gradsweep import data

    out = folder / f"{dataset}.npz"
    if dataset == "digits":
        data.prepare("digits", [], out)
    else:
        files = sorted(data.DEBIAN_FASHION_DIR.glob("*-ubyte.gz"))
        data.prepare("fashion_mnist", files, out)
    return out


def smoke_run(dataset: str) -> dict:
    import yaml

    from gradsweep.config import expand_runs

    config = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    runs = expand_runs(config)
    run = next(r for r in runs if r["widths"] == [16] * 4 and r["activation"] == "sigmoid")
    if dataset != "digits":  # the same net, one epoch of the seed's sweep on 50,000 images
        run = {**run, "dataset": dataset, "epochs": 2, "probe_size": 1000}
    return run


def measure(run: dict, data: Path, folder: Path) -> dict:
    out = folder / "out"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(run), str(data), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    wall = time.perf_counter() - start
    child = json.loads(result.stdout.strip().splitlines()[-1])
    marks = child["marks"]  # one log line per epoch 0 … E (seconds after the data phase)
    epochs = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    info = json.loads((out / "run.json").read_text())
    return {
        "start/exit": wall - child["total"],
        "libs": child["libs"],
        "tensorflow": child["tensorflow"],
        "data": child["data"],
        "epoch 0": marks[0],
        "epoch 1": epochs[0],
        "later": statistics.median(epochs[1:]) if len(epochs) > 1 else float("nan"),
        "finish": child["total"] - child["libs"] - child["tensorflow"] - child["data"] - marks[-1],
        "job": wall,
        "train_s": info["wall_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dataset", choices=["digits", "fashion_mnist"], action="append", dest="datasets"
    )
    args = parser.parse_args()
    datasets = args.datasets or ["digits", "fashion_mnist"]
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for dataset in datasets:
            data = prepare_data(dataset, folder)
            run = smoke_run(dataset)
            rows = [measure(run, data, folder) for _ in range(args.repeats)]
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            steps = {"digits": 107}.get(dataset, 5000)
            print(
                f"\n{dataset}: {run['run']}, {run['epochs']} epochs of {steps} steps, "
                f"{data.stat().st_size / 1e6:.1f} MB .npz; median of {args.repeats} fresh processes"
            )
            for key, value in med.items():
                share = (
                    f"{100 * value / med['job']:5.1f} %" if key not in ("job", "train_s") else ""
                )
                print(f"  {key:11s} {value:7.2f} s {share}")
            compile_s = med["epoch 1"] - med["later"]
            fixed = sum(med[k] for k in ("start/exit", "libs", "tensorflow", "data", "epoch 0"))
            print(
                f"  per-job overhead: start/exit + imports + data + first calls = {fixed:.2f} s, "
                f"plus ~{compile_s:.2f} s compiling the epoch = "
                f"{100 * (fixed + compile_s) / med['job']:.0f} % of the job"
            )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
