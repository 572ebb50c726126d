"""How long Snakemake takes to plan a 1,000-run sweep: ``snakemake -n`` on a generated grid.

    python benchmarks/dag_scale.py                 # 1,000 runs, 1 and 10 experiments
    python benchmarks/dag_scale.py --runs 1000 --repeats 5 --profile prof.out

Copies ``workflow/``, ``config/`` and ``src/`` to a temporary folder (the dry run writes
``.snakemake/`` there, never here), writes a config whose grids expand to ``--runs`` runs
of the digits dataset (no download), and times ``snakemake -n --cores 2 --configfile`` on
it: parsing the Snakefile, validating and expanding the config, building the DAG of every
train, aggregate, figure and table job. Goal: ≤ 10 s for 1,000 runs. ``--profile`` also
writes a cProfile of one dry run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softsign", "linear"]
INITS = ["scaled_normal", "he_normal", "glorot_normal", "lecun_normal", "standard_uniform"]


def grid_config(runs: int, experiments: int) -> dict:
    """``experiments`` experiments of ``runs / experiments`` runs each. A Cartesian grid of
    activation × init × depth × seed when the count factors so (1,000 = 8 × 5 × 5 × 5,
    100 = 4 × 5 × 5 × 1), else a list of single points."""
    per = runs // experiments
    config = {
        "train": {"threads": 1},
        "training": {"epochs": 1, "probe_size": 100},
        "experiments": {},
    }
    for e in range(experiments):
        sizes = next(
            (
                (a, i, d, per // (a * i * d))
                for a in range(len(ACTIVATIONS), 0, -1)
                for i in range(len(INITS), 0, -1)
                for d in (5, 4, 3, 2, 1)
                if per % (a * i * d) == 0
            ),
        )
        a, i, d, seeds = sizes
        grid = {
            "depth": list(range(1, d + 1)),
            "width": [16],
            "activation": ACTIVATIONS[:a],
            "init": INITS[:i],
            "seed": list(range(seeds)),
        }
        config["experiments"][f"scale{e}"] = {"dataset": "digits", "grid": grid}
    return config


def copy_repo(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".snakemake", "__pycache__", "results", "resources", "logs")
    for folder in ("workflow", "config", "src"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)


def dry_run(repo: Path, configfile: Path, profile: Path | None = None) -> tuple[float, str]:
    command = ["snakemake", "-n", "--cores", "2", "--configfile", str(configfile)]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), shutil.which("snakemake")]
        command += ["-n", "--cores", "2", "--configfile", str(configfile)]
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"snakemake -n failed:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout + result.stderr


def job_count(output: str) -> str:
    found = re.search(r"^total\s+(\d+)", output, re.MULTILINE)
    return found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write a cProfile of one dry run here")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        copy_repo(repo)
        for experiments in (1, 10):
            config = grid_config(args.runs, experiments)
            configfile = repo / "config" / f"scale_{experiments}.yaml"
            configfile.write_text(yaml.safe_dump(config))
            times, out = [], ""
            for _ in range(args.repeats):
                seconds, out = dry_run(repo, configfile)
                times.append(seconds)
            print(
                f"{args.runs} runs in {experiments} experiment(s): {job_count(out)} jobs planned; "
                f"snakemake -n median {statistics.median(times):.2f} s "
                f"(min {min(times):.2f}, max {max(times):.2f}, {args.repeats} runs)"
            )
        if args.profile:
            dry_run(repo, configfile, args.profile.resolve())
            print(f"cProfile of the last dry run: {args.profile}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
