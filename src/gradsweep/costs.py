"""What each job of a sweep cost, from the benchmark files Snakemake writes.

Every rule has a ``benchmark:`` file, ``results/<sweep>/benchmarks/<rule>/<wildcards>.tsv``
(``<rule>.tsv`` for a rule without wildcards; the wildcards' values joined by ``/`` as in the
job's log path). Snakemake samples the job's processes (its shell and everything below it)
every half second for about 15 s, then every 30 s, and writes one row per run of the job:
``s`` (wall seconds), ``max_rss`` (peak resident memory in MB, summed over the processes),
``cpu_time`` (user + system CPU seconds) and more (docs/outputs.md). A rerun overwrites its
job's file, so each file is the job's last run.

:func:`read_costs` reads them into one row per job, :func:`costliest` picks the top jobs by
wall time or peak memory, :func:`cost_lines` writes them as the end-of-run summary's
"Costliest jobs" (gradsweep.summary), and ``python -m gradsweep.costs results/<sweep>`` lists
them at any time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from gradsweep.formatting import duration_text, megabytes_text

BENCHMARKS = "benchmarks"  # the folder under results/<sweep>/
# Snakemake's benchmark columns -> ours
COLUMNS = {"s": "wall_s", "max_rss": "peak_rss_mb", "cpu_time": "cpu_s"}
COST_COLUMNS = ["rule", "wildcards", "wall_s", "peak_rss_mb", "cpu_s", "path"]
BY = {"wall_s": "wall time", "peak_rss_mb": "peak RSS"}
SUMMARY_TOP = 3  # jobs named per list in the end-of-run summary


def read_benchmark(path: str | Path) -> dict[str, float] | None:
    """One benchmark file's wall seconds, peak RSS (MB) and CPU seconds: the largest over its
    rows (a ``repeat(…)`` benchmark has one per repetition); NaN where Snakemake wrote ``NA``
    (the job ended before its first sample). None if the file is empty or not a benchmark."""
    try:
        frame = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    if frame.empty or not set(COLUMNS) <= set(frame.columns):
        return None
    values = frame[list(COLUMNS)].apply(pd.to_numeric, errors="coerce").max()
    return {ours: float(values[theirs]) for theirs, ours in COLUMNS.items()}


def read_costs(results: str | Path) -> pd.DataFrame:
    """One row per job with a benchmark file in ``results/benchmarks/`` (``results`` is the
    sweep's folder): ``rule``, ``wildcards`` (``""`` if none), ``wall_s``, ``peak_rss_mb``,
    ``cpu_s`` and the file's ``path``, in path order. Unreadable files are left out."""
    folder = Path(results) / BENCHMARKS
    rows = []
    for path in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        cost = read_benchmark(path)
        if cost is None:
            continue
        rule, _, wildcards = path.relative_to(folder).as_posix().removesuffix(".tsv").partition("/")
        rows.append({"rule": rule, "wildcards": wildcards, **cost, "path": str(path)})
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def costliest(costs: pd.DataFrame, by: str, n: int) -> pd.DataFrame:
    """The ``n`` jobs with the largest ``by`` (``wall_s`` or ``peak_rss_mb``), largest first;
    ties in path order; jobs without that measure are left out."""
    known = costs.dropna(subset=[by])
    return known.sort_values(by, ascending=False, kind="stable").head(n)


def job_text(job: pd.Series) -> str:
    """The rule in backticks, then the wildcards' values if any: ``train (smoke/b000)``."""
    return f"`{job['rule']}` ({job['wildcards']})" if job["wildcards"] else f"`{job['rule']}`"


def cost_text(job: pd.Series) -> str:
    """A job and its cost: ``train (smoke/b000): 18.5 s wall, 934 MB peak RSS, 12.8 s CPU``."""
    wall, cpu = (duration_text(job[c], tenths=True) for c in ("wall_s", "cpu_s"))
    return f"{job_text(job)}: {wall} wall, {megabytes_text(job['peak_rss_mb'])} peak RSS, {cpu} CPU"


def cost_lines(results: str | Path, n: int = SUMMARY_TOP, command: bool = True) -> list[str]:
    """The costliest jobs of the sweep whose folder is ``results`` as Markdown: the ``n``
    longest and the ``n`` largest in memory, then (``command``) the command that lists every
    job; no lines when no job has a benchmark file."""
    costs = read_costs(results)
    if costs.empty:
        return []
    folder = Path(results) / BENCHMARKS
    jobs = f"{len(costs)} job{'' if len(costs) == 1 else 's'}"
    lines = [f"{jobs} with a benchmark file in `{folder}/` (each job's last run)."]
    for by, what in BY.items():
        lines += ["", f"By {what}:", ""]
        lines += [f"- {cost_text(job)}" for _, job in costliest(costs, by, n).iterrows()]
    if command:
        lines += ["", f"Every job: `python -m gradsweep.costs --all {results}`"]
    return lines


def costs_table(costs: pd.DataFrame) -> str:
    """Every job as a Markdown table, longest first."""
    rows = [
        "| rule | wildcards | wall time | peak RSS | CPU time |",
        "|---|---|---:|---:|---:|",
    ]
    for _, job in costliest(costs, "wall_s", len(costs)).iterrows():
        wall, cpu = (duration_text(job[c], tenths=True) for c in ("wall_s", "cpu_s"))
        rss = megabytes_text(job["peak_rss_mb"])
        rows.append(f"| {job['rule']} | {job['wildcards']} | {wall} | {rss} | {cpu} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """``python -m gradsweep.costs results/<sweep> [--top N] [--all]``: the costliest jobs of a
    sweep (or every job, with ``--all``), from its benchmark files."""
    parser = argparse.ArgumentParser(
        prog="python -m gradsweep.costs", description="The costliest jobs of a sweep."
    )
    parser.add_argument("results", type=Path, help="the sweep's folder, results/<sweep>")
    parser.add_argument("--top", type=int, default=10, help="jobs per list (default 10)")
    parser.add_argument("--all", action="store_true", help="every job, longest first")
    args = parser.parse_args(argv)
    if args.all:
        costs = read_costs(args.results)
        text = costs_table(costs) if not costs.empty else ""
    else:
        text = "\n".join(cost_lines(args.results, args.top, command=False))
    if not text:
        raise SystemExit(f"no benchmark files in {args.results / BENCHMARKS}/")
    print(text)


if __name__ == "__main__":
    main()
