"""How long the figures and the results table of a 1,000-run sweep take, and whether they stay
within issue 13's limits.

    python benchmarks/bench_figures.py                 # 1,000 runs, 200 configs x 5 seeds
    python benchmarks/bench_figures.py --rounds 3 --keep /tmp/agg1000
    python benchmarks/bench_figures.py --old 3ba9b73 --rounds 3   # vs the old plots.py

Generates a synthetic aggregate (results/<sweep>/{runs,traces,metrics}.parquet as docs/outputs.md
describes them; synthetic_aggregate of tests/synthetic.py: depth 5 x width 2 x 4 activations x
5 inits x
5 seeds, 6 epochs of 50 traced steps) once, then times, per round, what the workflow's
figure and table jobs do, each reading its Parquet input as the job's script does:
``results_table`` (results.md + results_seeds.md), ``plot_figures`` (the three sweep-wide
figures), every page of ``plot_experiment`` (gradients + steps) and ``plot_diagnostics``.
Wall and CPU (process) time per job; the sum is their work on one core (the workflow runs
the page jobs in parallel, so 2 cores take about half of it).
Afterwards it checks every PNG against the limits (height, panels) and that the pages
account for every config. Goal: ≤ 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402
from synthetic import synthetic_aggregate  # noqa: E402

from gradsweep import plotting  # noqa: E402
from gradsweep.plotting.data import MAX_HEIGHT_PX, MAX_PANELS  # noqa: E402
from gradsweep.table.results import write_results  # noqa: E402

GRID = {
    "depth": (1, 2, 4, 6, 8),
    "width": (16, 64),
    "activation": ("sigmoid", "tanh", "relu", "elu"),
    "init": ("scaled_normal", "he_normal", "glorot_uniform", "normal", "lecun_normal"),
    "seeds": (0, 1, 2, 3, 4),
}


def results_table(agg: dict[str, Path], out: Path) -> None:
    runs = pd.read_parquet(agg["runs"])
    write_results(runs, out / "results.md", out / "results_seeds.md")


def sweep_figures(agg: dict[str, Path], out: Path) -> None:
    runs = pd.read_parquet(agg["runs"])
    probe = plotting.read_traces(agg["traces"], source="probe")
    plotting.plot_activation_init_grid(probe, runs, out / "activation_init.png")
    plotting.plot_accuracy_vs_depth(runs, out / "accuracy_depth.png")
    plotting.plot_ratio_heatmap(runs, out / "ratio_heatmap.png")


def experiment_pages(agg: dict[str, Path], out: Path) -> list[pd.DataFrame]:
    """Every page job of plot_experiment, as workflow/scripts/plot_experiment.py does it."""
    drawn = []
    all_runs = pd.read_parquet(agg["runs"])
    for page in plotting.page_suffixes(all_runs):
        runs = pd.read_parquet(agg["runs"])
        _, shown = plotting.data.page_runs(runs, page)
        for source, plot, name in (
            ("probe", plotting.plot_gradient_norms, "gradients"),
            ("step", plotting.plot_step_traces, "steps"),
        ):
            traces = plotting.read_traces(agg["traces"], source=source, run_ids=shown["run_id"])
            got = plot(traces, runs, out / f"{name}{page}.png", "grid", page)
            if name == "gradients":
                drawn.append(got)
    return drawn


def diagnostics(agg: dict[str, Path], out: Path) -> None:
    runs = pd.read_parquet(agg["runs"])
    probe = plotting.read_traces(
        agg["traces"], experiment="grid", source="probe", columns=plotting.DIAGNOSTIC_COLUMNS
    )
    plotting.plot_diagnostics(probe, runs, out / "diagnostics.png", "grid")


def old_modules(commit: str) -> tuple[object, object]:
    """plots.py and article.py of an older commit, importable side by side with the package."""
    import importlib
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="old_plotting."))
    for name in ("plots", "article"):
        text = subprocess.run(
            ["git", "show", f"{commit}:src/gradsweep/{name}.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        text = text.replace("from gradsweep import plots", "import old_plots as plots")
        text = text.replace("from gradsweep.plots import", "from old_plots import")
        (folder / f"old_{name}.py").write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("old_plots"), importlib.import_module("old_article")


def old_figures(agg: dict[str, Path], out: Path, commit: str) -> None:
    """What the old plot_figures, plot_experiment and plot_diagnostics jobs drew."""
    plots, article = old_modules(commit)
    runs = pd.read_parquet(agg["runs"])
    probe = plots.read_traces(agg["traces"], source="probe")
    plots.plot_activation_init_grid(probe, runs, out / "old_activation_init.png")
    plots.plot_accuracy_vs_depth(runs, out / "old_accuracy_depth.png")
    plots.plot_ratio_heatmap(runs, out / "old_ratio_heatmap.png")
    plots.plot_gradient_norms(probe, runs, out / "old_gradients.png", "grid")
    steps = plots.read_traces(agg["traces"], source="step")
    plots.plot_step_traces(steps, runs, out / "old_steps.png", "grid")
    diag = plots.read_traces(agg["traces"], source="probe", columns=article.DIAGNOSTIC_COLUMNS)
    article.plot_diagnostics(diag, runs, out / "old_diagnostics.png", "grid")


def check(out: Path, drawn: list[pd.DataFrame], runs: pd.DataFrame) -> list[str]:
    problems = []
    for png in sorted(out.glob("*.png")):
        with Image.open(png) as img:
            panels = int(img.info.get("Panels", 0))
            if img.height > MAX_HEIGHT_PX or panels > MAX_PANELS:
                problems.append(f"{png.name}: {img.size}, {panels} panels")
    shown = pd.concat(drawn)["config_id"]
    if sorted(shown) != sorted(runs["config_id"].unique()):
        problems.append("the pages do not show every config exactly once")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="folder for the aggregate and the figures")
    parser.add_argument(
        "--old", metavar="COMMIT",
        help="also time plots.py/article.py of COMMIT, interleaved (on a 144-run grid)",
    )  # fmt: skip
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_figures."))
    agg_dir = base / "aggregate"
    if (agg_dir / "runs.parquet").exists():
        agg = {n: agg_dir / f"{n}.parquet" for n in ("runs", "traces", "metrics")}
    else:
        t = time.perf_counter()
        # with --old: the 144-run grid (the old figures grow with every run)
        grid = {} if args.old else {"seeds": GRID["seeds"], **GRID}
        grid.pop("seeds", None)
        seeds = (0, 1) if args.old else GRID["seeds"]
        agg = synthetic_aggregate(agg_dir, steps_per_epoch=50, seeds=seeds, **grid)
        print(f"generated the aggregate in {time.perf_counter() - t:.0f} s")
    runs = pd.read_parquet(agg["runs"])
    n_rows = plotting.read_traces(agg["traces"], param=None, columns=("run_id",)).shape[0]
    print(
        f"{len(runs)} runs, {runs['config_id'].nunique()} configs, {n_rows:,} trace rows, "
        f"{len(plotting.page_suffixes(runs))} pages; load {os.getloadavg()[0]:.1f}"
    )
    jobs = {
        "results_table": results_table,
        "plot_figures": sweep_figures,
        "plot_experiment (all pages)": experiment_pages,
        "plot_diagnostics": diagnostics,
    }
    if args.old:
        jobs["old code: figures"] = lambda agg, out: old_figures(agg, out, args.old)
    times: dict[str, list[float]] = {name: [] for name in jobs}
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    drawn: list[pd.DataFrame] = []
    for r in range(args.rounds):
        out = base / f"figures{r}"
        out.mkdir(parents=True, exist_ok=True)
        for name, job in jobs.items():
            t, c = time.perf_counter(), time.process_time()
            result = job(agg, out)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            if name.startswith("plot_experiment"):
                drawn = result
    print(f"\n{'job':<30}{'wall median s':>14}{'min':>8}{'max':>8}{'CPU median s':>14}")
    for name, ts in times.items():
        print(
            f"{name:<30}{statistics.median(ts):>14.1f}{min(ts):>8.1f}{max(ts):>8.1f}"
            f"{statistics.median(cpu[name]):>14.1f}"
        )
    total = [sum(ts[i] for ts in times.values()) for i in range(args.rounds)]
    total_cpu = [sum(ts[i] for ts in cpu.values()) for i in range(args.rounds)]
    print(
        f"{'total':<30}{statistics.median(total):>14.1f}{min(total):>8.1f}{max(total):>8.1f}"
        f"{statistics.median(total_cpu):>14.1f}"
    )
    problems = check(base / "figures0", drawn, runs)
    if args.old:
        problems = [p for p in problems if not p.startswith("old_")]
        for png in sorted((base / "figures0").glob("old_*.png")):
            with Image.open(png) as img:
                print(f"old {png.name}: {img.size[0]} x {img.size[1]} px")
    print("limits:", "all figures within limits, every config drawn" if not problems else "")
    for p in problems:
        print("  ", p)
    print(f"load {os.getloadavg()[0]:.1f}; figures in {base}")


if __name__ == "__main__":
    main()
