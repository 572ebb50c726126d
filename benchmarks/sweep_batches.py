"""Whole sweeps, one process per run (an old checkout) vs batches of runs (this checkout).

    python benchmarks/sweep_batches.py --old /path/to/old/checkout            # digits, 144 runs
    python benchmarks/sweep_batches.py --old ../base --sweep fashion25         # MNIST-size, 26 runs
    python benchmarks/sweep_batches.py --old ../base --order old new new old   # the default order

Each sweep is ``snakemake --cores 2 --configfile <sweep>.yaml`` (every default target:
figures, table, article figures) in a fresh temporary copy of the checkout's ``workflow/``,
``config/`` and ``src/``, so no run starts from a cache or a finished result. Copies run one
after another in ``--order`` (interleaved, so a change in the machine's load hits both).

Printed per sweep: wall time; CPU time (Snakemake and all its jobs, user + system: less
sensitive to other load on the machine than wall time); the span of the training phase
(first train job started to the last run's files in place, from Snakemake's log); and, for
batched sweeps, the per-run start-up inside a batch: a trained run's seconds in
``train_batch`` (the batch manifest) minus its steady-state training time (its epochs x the
median of its epochs 2, 3, ... from ``metrics.parquet``). That is everything a run costs
beyond its SGD and evaluation: building the net, tracing and compiling (when the batch has
no compiled code of that shape yet), epoch 0, writing files. Also printed: each run's whole
seconds and process CPU seconds in its batch. The last line: ``key=value`` figures (medians).

The sweeps:
  digits144  a new user's first grid: depth [1, 3, 6] x width [16, 64] x 4 activations x
             3 inits x 2 seeds on sklearn's digits, 5 epochs (issue 14)
  digits48   the same with activations [sigmoid, relu] and inits [scaled_normal, he_normal]
             (48 runs; for a loaded machine, where the old 144-run sweep takes hours)
  fashion25  config/fashion.yaml's sigmoid_depth + relu_depth + nielsen_depth without the
             2048-wide net, seeds 0 and 1 (26 runs of 30 or 60 epochs on Fashion-MNIST)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

DIGITS144 = {
    "train": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "training": {
        "epochs": 5,
        "batch_size": 10,
        "learning_rate": 0.1,
        "l2": 5.0,
        "probe_size": 500,
    },
    "experiments": {
        "grid144": {
            "description": "depth x width x activation x init x 2 seeds on digits",
            "dataset": "digits",
            "grid": {
                "depth": [1, 3, 6],
                "width": [16, 64],
                "activation": ["sigmoid", "tanh", "relu", "elu"],
                "init": ["scaled_normal", "he_normal", "glorot_uniform"],
                "seed": [0, 1],
            },
        }
    },
}


def fashion25(checkout: Path) -> dict:
    config = yaml.safe_load((checkout / "config/fashion.yaml").read_text())
    keep = ("sigmoid_depth", "relu_depth", "nielsen_depth")
    config["experiments"] = {k: copy.deepcopy(config["experiments"][k]) for k in keep}
    for name, experiment in config["experiments"].items():
        grids = experiment["grid"] if isinstance(experiment["grid"], list) else [experiment["grid"]]
        for grid in grids:
            if "widths" in grid:
                grid["widths"] = [w for w in grid["widths"] if w != [2048, 1024, 512, 256]]
            grid["seed"] = [0, 1]
        # an entry that held only the wide net is dropped whole
        experiment["grid"] = [g for g in grids if g.get("widths", True)]
        if "reference" in experiment and name == "relu_depth":
            values = experiment["reference"].get("values", [])
            experiment["reference"]["values"] = [
                v for v in values if v.get("widths") != "2048-1024-512-256"
            ]
    return config


def digits48(checkout: Path) -> dict:
    """digits144 with 2 activations and 2 inits: 12 net shapes of 4 runs (144: 24 of 6)."""
    config = copy.deepcopy(DIGITS144)
    grid = config["experiments"]["grid144"]["grid"]
    grid.update(activation=["sigmoid", "relu"], init=["scaled_normal", "he_normal"])
    return config


SWEEPS = {"digits144": lambda checkout: DIGITS144, "digits48": digits48, "fashion25": fashion25}
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]{8} \d{4})\]$")
RULE = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")


def copy_checkout(checkout: Path, dest: Path) -> Path:
    for part in ("workflow", "config", "src"):
        shutil.copytree(
            checkout / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    return dest


def train_span(log: str) -> float:
    """Seconds from the first train job's start to the last train/run_files job's end."""
    stamp, first, last, rule = None, None, None, None
    for line in log.splitlines():
        if match := STAMP.match(line):
            stamp = datetime.strptime(match[1], "%a %b %d %H:%M:%S %Y")
        elif (match := RULE.match(line)) and match[1] == "train" and first is None:
            first = stamp
        elif line.startswith("Finished jobid:"):
            rule = line.rsplit("Rule: ", 1)[-1].rstrip(")")
            if rule in ("train", "run_files"):
                last = stamp
    return (last - first).total_seconds() if first and last else float("nan")


def startups(workdir: Path) -> list[dict]:
    """Per trained run inside a batch: its seconds minus its steady-state training time."""
    import pandas as pd

    rows = []
    for manifest in sorted((workdir / "results/sweep/batches").rglob("*.json")):
        shapes: set = set()
        for member in json.loads(manifest.read_text())["runs"]:
            entry = workdir / member["cache"]  # relative to the working directory
            info = json.loads((entry / "run.json").read_text())
            cfg = info["config"]
            shape = (tuple(cfg["widths"]), cfg["activation"], cfg["learning_rate"], cfg["loss"])
            new_shape = shape not in shapes
            shapes.add(shape)
            if not member["trained"]:
                continue
            wall = pd.read_parquet(entry / "metrics.parquet")["wall_s"]
            deltas = wall.diff().to_numpy()[2:]  # epochs 2, 3, …
            steady = float(statistics.median(deltas)) if len(deltas) else 0.0
            rows.append(
                {
                    "run": info["run_id"],
                    "first_of_batch": not rows or rows[-1]["batch"] != manifest.name,
                    "batch": manifest.name,
                    "new_shape": new_shape,
                    "startup_s": member["seconds"] - cfg["epochs"] * steady,
                    "seconds": member["seconds"],
                    "cpu_s": member.get("cpu_s", float("nan")),
                }
            )
    return rows


def run_sweep(kind: str, checkout: Path, config: dict, cores: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"sweep-{kind}-"))
    work = copy_checkout(checkout, root / "work")
    (work / "sweep.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        ["snakemake", "--cores", str(cores), "--configfile", "sweep.yaml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # Snakemake and all its jobs
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    log = result.stdout + result.stderr
    if result.returncode:
        sys.exit(f"{kind} sweep failed in {work}:\n{log[-5000:]}")
    counts = {}
    for line in log.splitlines():
        if (match := RULE.match(line)) and match[1] in ("train", "run_files"):
            counts[match[1]] = counts.get(match[1], 0) + 1
    row = {
        "kind": kind,
        "wall_s": wall,
        "cpu_s": cpu,
        "train_span_s": train_span(log),
        "train_jobs": counts.get("train", 0),
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "startups": startups(work) if (work / "results/sweep/batches").is_dir() else [],
    }
    shutil.rmtree(root, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout with one job per run")
    parser.add_argument("--new", type=Path, default=ROOT, help="checkout with batches")
    parser.add_argument("--sweep", choices=sorted(SWEEPS), default="digits144")
    parser.add_argument("--order", nargs="+", default=["old", "new", "new", "old"])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    config = SWEEPS[args.sweep](checkouts["new"])
    runs = []
    for kind in args.order:
        row = run_sweep(kind, checkouts[kind], config, args.cores)
        runs.append(row)
        print(
            f"{kind}: wall {row['wall_s']:.1f} s, CPU {row['cpu_s']:.0f} s, "
            f"training phase {row['train_span_s']:.0f} s, "
            f"{row['train_jobs']} train jobs, load {row['load_before']:.1f} -> "
            f"{row['load_after']:.1f}",
            flush=True,
        )
    summary = {}
    for kind in ("old", "new"):
        for what in ("wall_s", "cpu_s", "train_span_s"):
            values = [round(r[what], 1) for r in runs if r["kind"] == kind]
            if values:
                summary[f"{kind}_{what}"] = statistics.median(values)
                print(f"{kind} {what}: median {statistics.median(values):.1f}, all {values}")
    if "old_wall_s" in summary and "new_wall_s" in summary:
        summary["speedup"] = summary["old_wall_s"] / summary["new_wall_s"]
        summary["cpu_ratio"] = summary["old_cpu_s"] / summary["new_cpu_s"]
    starts = [s for r in runs for s in r["startups"]]
    if starts:
        groups = {
            "all": starts,
            "first_in_batch": [s for s in starts if s["first_of_batch"]],
            "new_shape": [s for s in starts if s["new_shape"] and not s["first_of_batch"]],
            "reused_shape": [s for s in starts if not s["new_shape"]],
        }
        for name, group in groups.items():
            for what in ("startup_s", "seconds", "cpu_s"):
                values = sorted(s[what] for s in group)
                if values:
                    p90 = values[int(0.9 * (len(values) - 1))]
                    print(
                        f"per run in a batch, {what}, {name}: n={len(values)} median "
                        f"{statistics.median(values):.2f}, p90 {p90:.2f}, max {values[-1]:.2f}"
                    )
            summary[f"startup_{name}_s"] = statistics.median(s["startup_s"] for s in group)
        summary["startup_mean_s"] = statistics.fmean(s["startup_s"] for s in starts)
    print(" ".join(f"{k}={v:.2f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
