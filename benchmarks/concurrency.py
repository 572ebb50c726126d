"""Several train jobs at once on this machine: total wall time against one after another.

    python benchmarks/concurrency.py                     # 4 jobs: 1 × 4, 2 × 2, 4 × 1
    python benchmarks/concurrency.py --jobs 4 --threads 1 2

Each job is a fresh process training one run (the smoke net, 784-16-16-16-16-10, two epochs
of 5,000 steps on Fashion-MNIST) through ``gradsweep.run.train_run`` with ``threads`` as its
TensorFlow intra/inter-op pool size, like a Snakemake ``train`` job. ``--jobs`` jobs run in
waves of ``parallel`` at a time; the total wall time is what a sweep on this machine sees.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_overhead import CHILD, ROOT, prepare_data, smoke_run  # noqa: E402


def wave(run: dict, data: Path, folder: Path, parallel: int, threads: int) -> None:
    child = CHILD.replace("threads=1", f"threads={threads}")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child, json.dumps(run), str(data), str(folder / f"o{i}")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for i in range(parallel)
    ]
    if any([p.wait() for p in procs]):
        raise SystemExit("a train job failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = prepare_data("fashion_mnist", folder)
        run = smoke_run("fashion_mnist")
        for threads in args.threads:
            for parallel in args.parallel:
                start = time.perf_counter()
                for _ in range(args.jobs // parallel):
                    wave(run, data, folder, parallel, threads)
                wall = time.perf_counter() - start
                print(
                    f"{args.jobs} jobs, {parallel} at a time, {threads} thread(s) each: "
                    f"{wall:6.1f} s total ({wall / args.jobs:.1f} s per job), "
                    f"load average {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
