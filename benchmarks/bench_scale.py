"""Peak memory, wall time and disk bytes per trace row of the train job and the post-training
jobs at sweep scale (issue 25).

    python benchmarks/bench_scale.py                          # 25 and 200 runs, this checkout
    python benchmarks/bench_scale.py --runs 25 --code /work/main/src   # another checkout's code
    python benchmarks/bench_scale.py --runs 25 100 --cap-gb 8 --keep /tmp/scale
    python benchmarks/bench_scale.py --train-only --code OLD/src src   # train job, interleaved
    python benchmarks/bench_scale.py --sweep results/S --experiment E --code OLD/src src
                                      # a real sweep's post-training jobs, old and new code

One experiment of N runs (configs of 5 seeds each; widths vary) of 30 epochs × 5,000 traced
steps × 4 hidden layers: 10 parameter tensors, so 50,000 step rows an epoch and 1.5 M trace
rows a run, as a Fashion-MNIST run with batch 10 and ``trace_every: 1`` records them. Each
run's files are written through the real writers (``tests/synthetic.py``'s ``write_run``:
``gradsweep.io.write_parquet`` with the run schemas) of the code under ``--code``. The probe
rows and metrics are each run's own; the step rows (the bulk) are one run's, relabelled, so
that writing 200 runs takes minutes, not an hour; the values are rounded to float32 where a
trained run's are float32 numbers (TensorFlow's norms), so the old float64 files compress as
real ones do.

Then every job of the experiment runs in its own process, as Snakemake runs it:
``aggregate_experiment`` (gradsweep.aggregate.aggregate), each page of ``plot_experiment``,
``plot_figures``, ``plot_diagnostics``, ``tensorboard_experiment`` and ``results_table`` (the
workflow scripts, with the ``snakemake`` object they read). Peak RSS
(GNU time's maximum resident set size) and wall time per job; a job whose RSS passes
``--cap-gb`` is killed and reported as over it (the machine is shared). What drives each
job's memory:

- ``aggregate_experiment``: the rows of one run (the one run's table it casts and writes), so
  a shorter run is not equivalent;
- ``plot_experiment``: the rows of the runs on its page that it reads (all the steps of the
  bias rows for the step figure), so N and the steps per run both count;
- ``plot_figures``, ``results_table``: probe rows, runs.parquet and metrics only.

The train job (first; ``--train-only``, ``--no-train``) is workflow/scripts/train.py run the
same way on real Fashion-MNIST prepared as the workflow prepares it (random images of its shape
without Debian's copy): 4 hidden layers, batch 10, 5,000 steps an epoch, every step traced,
weight decay on. It holds one batch of runs, one run at a time, so 200 runs are not one job
but 200 / (runs a batch) of them, and a job's memory is TensorFlow, the data set, what a batch
keeps per run (:data:`TRAIN_CASES`: 1 vs 8 runs, each a new net shape) and one run's unwritten
rows (2 vs 8 epochs: by 8 the ``ROW_GROUP_ROWS`` buffer has filled and been written once, so
30 epochs hold no more).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (16, 32, 64, 100, 128, 200, 256, 300, 400, 512)
ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu")
FLOAT32_COLUMNS = ("grad_norm", "update_norm")  # a trained run's are float32 numbers

# Each job runs in a fresh interpreter: argv[1] is the job, argv[2] a JSON of its paths.
JOB = r"""
import json, os, runpy, sys, types
os.environ["MPLBACKEND"] = "Agg"
job, args = sys.argv[1], json.loads(sys.argv[2])
if job == "aggregate_experiment":
    from gradsweep.aggregate import aggregate
    aggregate(args["infos"], args["traces"], args["metrics"], *args["out"])
else:
    class Names(types.SimpleNamespace):  # Snakemake's named lists: by name, and in order
        def __getitem__(self, key):
            return list(vars(self).values())[key] if isinstance(key, int) else getattr(self, key)
        def __iter__(self): return iter(vars(self).values())
    smk = types.SimpleNamespace(
        input=Names(**args["input"]), output=Names(**args["output"]), log=[args["log"]],
        wildcards=Names(**args.get("wildcards", {})), params=Names(**args.get("params", {})),
        rule=args.get("rule", job), config=args.get("config", {}), threads=args.get("threads", 1),
    )
    runpy.run_path(args["script"], init_globals={"snakemake": smk}, run_name="__main__")
"""


def make_runs(n: int, out: Path) -> list:
    """``n`` runs' files under ``out``: 5 seeds per config, the configs' widths and activations
    varying; returns synthetic.RunFiles."""
    import numpy as np
    import pandas as pd
    from synthetic import Run, make_run, write_run

    def run(i: int) -> Run:
        config, seed = divmod(i, 5)
        width = WIDTHS[config % len(WIDTHS)]
        activation = ACTIVATIONS[config // len(WIDTHS) % len(ACTIVATIONS)]
        widths = (width,) * 4
        return Run("scale", widths, activation, "he_normal", seed, "fashion_mnist", 30, 5000)

    template = make_run(run(0)).traces
    steps = template[template["source"] == "step"].copy()
    for column in FLOAT32_COLUMNS:
        steps[column] = steps[column].astype(np.float32).astype(np.float64)
    files = []
    for i in range(n):
        data = make_run(dataclasses.replace(run(i), steps=False))
        for column in FLOAT32_COLUMNS:
            data.traces[column] = data.traces[column].astype(np.float32).astype(np.float64)
        step_rows = steps.assign(run_id=data.info["run_id"])
        data.traces = pd.concat([data.traces, step_rows], ignore_index=True)
        files.append(write_run(data, out / "runs", out))  # traces: out/traces/experiment=scale/
    return files


def run_job(job: str, args: dict, env: dict, cap_kb: int) -> dict:
    """Run one job in its own process under GNU time (its peak RSS is the job's alone, not
    this process's, which a forked child would start from): peak RSS (MB), wall s, and
    whether it passed the cap (then it is killed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["/usr/bin/time", "-f", "MAXRSS_KB %M", sys.executable, "-c", JOB, job, json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    over = threading.Event()

    def watch() -> None:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        while proc.poll() is None:
            try:
                (pid,) = children.read_text().split() or (None,)
                status = Path(f"/proc/{pid}/status").read_text().splitlines() if pid else []
            except (OSError, ValueError):
                status = []
            rss = next((int(x.split()[1]) for x in status if x.startswith("VmRSS")), 0)
            if rss > cap_kb:
                over.set()
                os.kill(int(pid), 9)
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    output, _ = proc.communicate()
    if proc.returncode and not over.is_set():
        raise RuntimeError(f"{job} failed:\n{output}")
    peak = next(int(x.split()[1]) for x in output.splitlines() if x.startswith("MAXRSS_KB"))
    return {
        "job": job,
        "peak_mb": round(peak / 1024),
        "wall_s": round(time.perf_counter() - start, 1),
        "over_cap": over.is_set(),
    }


def jobs(files: list, out: Path, experiment: str = "scale") -> list[tuple[str, dict]]:
    """The experiment's post-training jobs and their paths, in the workflow's order."""
    import pandas as pd

    agg = {k: out / "experiments" / experiment / f"{k}.parquet" for k in ("runs", "metrics")}
    traces = [str(f.traces) for f in files]
    aggregate = {
        "infos": [str(f.info) for f in files],
        "traces": traces,
        "metrics": [str(f.metrics) for f in files],
        "out": [str(agg[k]) for k in ("runs", "metrics")],
    }
    yield "aggregate_experiment", aggregate
    tables = {"runs": str(agg["runs"]), "traces": traces, "metrics": str(agg["metrics"])}
    from gradsweep.plotting.data import page_suffixes

    runs = pd.read_parquet(agg["runs"])
    figures = out / "figures"
    for page in page_suffixes(runs):
        yield (
            f"plot_experiment{page}",
            {
                "script": str(ROOT / "workflow/scripts/plot_experiment.py"),
                "input": tables,
                "output": {
                    k: str(figures / f"{k}{page}.png")
                    for k in ("gradients", "steps", "updates", "learning_curves")
                },  # fmt: skip
                "log": str(out / f"plot_experiment{page}.log"),
                "wildcards": {"experiment": experiment, "page": page},
            },
        )
    yield (
        "plot_figures",
        {
            "script": str(ROOT / "workflow/scripts/plot_figures.py"),
            "input": {"runs": str(agg["runs"]), "traces": traces},
            "output": {
                k: str(figures / f"{k}.png")
                for k in ("activation_init", "accuracy_depth", "ratio_heatmap")
            },  # fmt: skip
            "log": str(out / "plot_figures.log"),
        },
    )
    yield (
        "plot_diagnostics",
        {
            "script": str(ROOT / "workflow/scripts/plot_article.py"),
            "input": tables,
            "output": {"diagnostics": str(figures / "diagnostics.png")},
            "log": str(out / "plot_diagnostics.log"),
            "params": {"experiment": experiment},
        },
    )
    yield (
        "tensorboard_experiment",
        {
            "script": str(ROOT / "workflow/scripts/tensorboard.py"),
            "input": {"infos": [str(f.info) for f in files], **tables},
            "output": {"events": str(out / "tensorboard/scale")},
            "log": str(out / "tensorboard.log"),
        },
    )
    yield (
        "results_table",
        {
            "script": str(ROOT / "workflow/scripts/results_table.py"),
            "input": {"runs": str(agg["runs"]), "metrics": str(agg["metrics"])},
            "output": {"table": str(out / "results.md"), "seeds": str(out / "results_seeds.md")},
            "log": str(out / "results_table.log"),
            "params": {"references": {}},
        },
    )


def bench(n: int, code: Path, out: Path, cap_gb: float) -> None:
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT / 'tests'}"}
    start = time.perf_counter()
    files = make_runs(n, out)
    rows = sum(_rows(f.traces) for f in files)
    trace_bytes = sum(f.traces.stat().st_size for f in files)
    print(f"\n{n} runs, {rows:,} trace rows, written in {time.perf_counter() - start:.0f} s; "
          f"run files {trace_bytes / rows:.2f} bytes per trace row")  # fmt: skip
    print("| job | peak RSS (MB) | wall (s) |\n|---|---:|---:|")
    for job, args in jobs(files, out):
        result = run_job(_kind(job), args, env, int(cap_gb * 2**20))
        peak = f"> {cap_gb * 1024:.0f} (killed)" if result["over_cap"] else result["peak_mb"]
        print(f"| {job} | {peak} | {result['wall_s']} |", flush=True)
    # the folder as the workflow leaves it: the traces once (here written in place; in a sweep,
    # the run cache's files hard-linked), beside runs/, experiments/, figures/, tensorboard/
    du = int(subprocess.run(["du", "-sb", str(out)], capture_output=True, text=True,
                            check=True).stdout.split()[0])  # fmt: skip
    print(f"du of the results: {du / 2**20:,.0f} MB = {du / trace_bytes:.3f} x the traces' "
          f"{trace_bytes / 2**20:,.0f} MB; {du / rows:.2f} bytes per trace row")  # fmt: skip


def bench_sweep(folder: Path, experiment: str, codes: list[Path], cap_gb: float,
                rounds: int = 2) -> None:  # fmt: skip
    """The post-training jobs of one experiment of a real sweep (``results/<sweep>``: its runs'
    run.json and metrics under runs/, their traces under traces/), each job with each code,
    interleaved over ``rounds``, into a temporary folder (the sweep is only read)."""
    from synthetic import RunFiles

    from gradsweep.io import trace_path

    runs = sorted(p for p in (folder / "runs" / experiment).iterdir() if p.is_dir())
    files = [RunFiles(r / "run.json", trace_path(folder, experiment, r.name),
                      r / "metrics.parquet") for r in runs]  # fmt: skip
    rows = sum(_rows(f.traces) for f in files)
    print(f"\n{folder} {experiment}: {len(files)} runs, {rows:,} trace rows")
    print("| round | job | code | peak RSS (MB) | wall (s) |\n|---|---|---|---:|---:|")
    for i in range(rounds):
        for code in codes:
            env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT / 'tests'}"}
            with tempfile.TemporaryDirectory() as tmp:
                for job, args in jobs(files, Path(tmp), experiment):
                    result = run_job(_kind(job), args, env, int(cap_gb * 2**20))
                    peak = "killed" if result["over_cap"] else result["peak_mb"]
                    print(f"| {i} | {job} | {code} | {peak} | {result['wall_s']} |", flush=True)


# The train job's cases (module docstring): (runs in the batch, each a new net shape; epochs).
TRAIN_CASES = ((1, 2), (8, 2), (1, 8))


def train_config(runs: int, epochs: int) -> dict:
    """A sweep config of one batch of ``runs`` Fashion-MNIST runs, each of ``epochs`` epochs of
    5,000 steps (batch 10), every step traced, weight decay on (the split columns filled), 4
    hidden layers; each run a new net shape (width 100 + 4 i) and seed, so each traces and
    compiles its functions anew."""
    grid = [
        {"depth": [4], "width": [100 + 4 * i], "activation": ["sigmoid"],
         "init": ["scaled_normal"], "seed": [i]}
        for i in range(runs)
    ]  # fmt: skip
    training = {"epochs": epochs, "batch_size": 10, "learning_rate": 0.1, "l2": 5.0,
                "probe_size": 500, "trace_every": 1}  # fmt: skip
    return {
        "train": {"threads": 1, "runs_per_job": runs},
        "training": training,
        "experiments": {"train": {"dataset": "fashion_mnist", "grid": grid}},
    }


def prepared_fashion(out: Path) -> Path:
    """The workflow's prepared Fashion-MNIST (``resources/data/fashion_mnist.npz``, written by
    ``gradsweep.data.prepare`` from Debian's files), or, without those, random images of its
    shape (60,000 + 10,000 images of 28 x 28) split and scaled the same way."""
    import numpy as np

    from gradsweep.data import prepare, source_files, spec, split_and_scale

    path = out / "fashion_mnist.npz"
    files = source_files("fashion_mnist", None)
    if files:
        prepare("fashion_mnist", files, path)
        return path
    rng, sp = np.random.default_rng(0), spec("fashion_mnist")
    raw = [rng.integers(0, 256, (n, 28, 28), np.uint8) for n in (sp.n_train_images, 10_000)]
    labels = [rng.integers(0, 10, len(x)) for x in raw]
    splits = split_and_scale(raw[0], labels[0], raw[1], labels[1], n_val=sp.n_val,
                             max_value=sp.max_value)  # fmt: skip
    with path.open("wb") as fh:
        np.savez(fh, **splits.arrays())
    return path


def train_job(runs: int, epochs: int, data: Path, folder: Path) -> dict:
    """The train job of one batch (``b000``) of ``train_config(runs, epochs)`` as Snakemake runs
    it: workflow/scripts/train.py with its ``snakemake`` object, its outputs under ``folder``
    (a run cache of its own: every run is trained)."""
    from gradsweep.batches import batch_members, members_digest

    config = train_config(runs, epochs)
    return {
        "script": str(ROOT / "workflow/scripts/train.py"),
        "config": config,
        "input": {"data": str(data)},
        "output": {"manifest": str(folder / "batches/train/b000.json")},
        "log": str(folder / "train.log"),
        "wildcards": {"experiment": "train", "batch": "b000"},
        "params": {
            "members": members_digest(batch_members(config, "train", "b000")),
            "cache": str(folder / "cache"),
            "checkpoints": str(folder / "checkpoints"),
            "logs": str(folder / "logs"),
        },
    }


def bench_train(codes: list[Path], out: Path, cap_gb: float) -> None:
    """Each train case with each checkout's code in turn (interleaved): peak RSS, wall time."""
    data = prepared_fashion(out)
    print(f"\ntrain job: {data.stat().st_size / 2**20:.0f} MB of prepared data; "
          f"load {os.getloadavg()}")  # fmt: skip
    print("| job | code | trace rows a run | peak RSS (MB) | wall (s) |\n|---|---|---:|---:|---:|")
    for runs, epochs in TRAIN_CASES:
        for code in codes:
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                args = train_job(runs, epochs, data, Path(tmp))
                env = {**os.environ, "PYTHONPATH": str(code)}
                result = run_job("train", args, env, int(cap_gb * 2**20))
                traces = list(Path(tmp).glob("cache/train/*/traces.parquet"))
                rows = _rows(traces[0]) if traces else 0
            peak = f"> {cap_gb * 1024:.0f} (killed)" if result["over_cap"] else result["peak_mb"]
            job = f"train, {runs} run{'s' * (runs > 1)} x {epochs} epochs"
            print(f"| {job} | {code} | {rows:,} | {peak} | {result['wall_s']} |", flush=True)


def _kind(job: str) -> str:
    return "plot_experiment" if job.startswith("plot_experiment") else job


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[25, 200])
    parser.add_argument(
        "--code",
        type=Path,
        nargs="+",
        default=[ROOT / "src"],
        help="gradsweep's src/ (several: each job with each, interleaved)",
    )
    parser.add_argument("--cap-gb", type=float, default=8.0, help="kill a job above this RSS")
    parser.add_argument("--keep", type=Path, help="write here (default: a temporary folder)")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--train-only", action="store_true", help="only the train job's cases")
    part.add_argument("--no-train", action="store_true", help="only the post-training jobs")
    part.add_argument("--sweep", type=Path, help="a real sweep's results/<sweep> instead")
    parser.add_argument("--experiment", help="with --sweep: the experiment whose jobs to run")
    args = parser.parse_args()
    codes = [code.resolve() for code in args.code]
    sys.path[:0] = [str(codes[0]), str(ROOT / "tests")]
    print(f"code: {', '.join(map(str, codes))}; load {os.getloadavg()}")
    if args.sweep:
        if not args.experiment:
            parser.error("--sweep needs --experiment")
        bench_sweep(args.sweep, args.experiment, codes, args.cap_gb)
        return
    if not args.no_train:
        with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
            bench_train(codes, Path(tmp), args.cap_gb)
    if args.train_only:
        return
    for n in args.runs:
        for code in codes:
            with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
                bench(n, code, Path(tmp), args.cap_gb)


if __name__ == "__main__":
    main()
