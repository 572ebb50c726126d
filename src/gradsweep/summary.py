"""The end-of-run summary: what a sweep run did, where its results are, what they say and,
after a failure, which job failed and how to resume. The Snakefile's ``onsuccess`` and
``onerror`` handlers call :func:`write_summary`, which writes ``results/<sweep>/summary.md``,
and print what it returns. Paths below are in the sweep's folder ``results/<sweep>/`` and
``logs/<sweep>/``; the run cache, ``results/cache/``, is every sweep's.

What each run of the sweep went through in this invocation (:func:`run_outcomes`) is read from
the files, by their mtimes against the time the workflow was parsed:

- *trained*: its per-run training log (``logs/<sweep>/train/<experiment>/<run>.log``, written
  only when a run trains) is new and its run cache entry is complete;
- *failed*: its training log is new but its cache entry is not (it raised, or was killed);
- *from the run cache*: its ``results/<sweep>/runs/…/run.json`` was put in place anew,
  untrained;
- *unchanged*: its run.json holds its current config and is older (nothing to do);
- *not finished*: none of these (its job failed before it, or never started).

Diverged and never-learned runs, and the verdicts, come from ``results/<sweep>/runs.parquet``
when it is up to date with the runs' files (gradsweep.verdicts has the definitions); the
costliest jobs, by wall time and by peak memory, from the jobs' benchmark files in
``results/<sweep>/benchmarks/`` (gradsweep.costs).
"""

from __future__ import annotations

import re
import shlex
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gradsweep.batches import RUN_CACHE, cache_entry, is_cached
from gradsweep.costs import cost_lines
from gradsweep.facets import axis_text, varying_axes, widths_label, with_axes
from gradsweep.formatting import duration_text, format_percent
from gradsweep.plan import run_is_current, run_json
from gradsweep.verdicts import never_learned

OUTCOMES = ("trained", "from the run cache", "unchanged", "failed", "not finished")
CONFIGS_NAMED = 2  # configs named per experiment: the worst gradient, the most never learned
FAILED_RUNS_NAMED = 5


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def run_outcomes(
    runs: Mapping[tuple[str, str], Mapping[str, Any]],
    since: float,
    results: str | Path,
    cache: str | Path,
    logs: str | Path,
) -> dict[str, str]:
    """{run_id: one of OUTCOMES} for the sweep's runs ``{(experiment, run): config}`` in the
    invocation that started at ``since`` (module docstring): ``results`` is the sweep's folder,
    ``cache`` the run cache, ``logs`` the runs' training logs (``logs/<sweep>/train``)."""
    outcomes = {}
    for (experiment, run), cfg in sorted(runs.items()):
        log = _mtime(Path(logs) / experiment / f"{run}.log")
        info = run_json(results, experiment, run)
        if log is not None and log >= since:
            outcome = "trained" if is_cached(cache_entry(cache, cfg)) else "failed"
        elif run_is_current(info, cfg):
            outcome = "from the run cache" if (_mtime(info) or 0) >= since else "unchanged"
        else:
            outcome = "not finished"
        outcomes[f"{experiment}/{run}"] = outcome
    return outcomes


def up_to_date_runs(path: str | Path, run_ids: Sequence[str], results: str | Path) -> pd.DataFrame:
    """runs.parquet's rows of ``run_ids`` if it is newer than each of their run.json files and
    has them all; an empty frame if not (a failed or partial run left it behind)."""
    table = Path(path)
    written = _mtime(table)
    files = [_mtime(Path(results) / "runs" / run_id / "run.json") for run_id in run_ids]
    if written is None or any(t is None or t > written for t in files):
        return pd.DataFrame()
    runs = pd.read_parquet(table)
    runs = runs[runs["run_id"].isin(run_ids)]
    return runs if len(runs) == len(run_ids) else pd.DataFrame()


def is_stuck(runs: pd.DataFrame) -> pd.Series:
    """Never learned, among the runs that did not diverge (gradsweep.verdicts)."""
    return never_learned(runs["best_val_acc"]) & (runs["status"] != "diverged")


# --------------------------------------------------------------------------- verdicts


def _config_label(config: pd.Series, axes: Sequence[str]) -> str:
    """``4 × 16 sigmoid scaled_normal``: the net's widths, then the other settings that vary."""
    words = [axis_text(a, config[a]) for a in axes if a not in ("depth", "width")]
    return " ".join([widths_label(config["widths"]), *words])


def _configs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config: its label, seeds, modal verdict, never learned, diverged, ratio."""
    df = with_axes(runs).assign(stuck=is_stuck(runs), diverged=runs["status"] == "diverged")
    axes = varying_axes(df)
    rows = []
    for _, group in df.groupby("config_id", sort=False):
        verdicts = group["verdict"].fillna("unknown").value_counts()
        top = sorted(verdicts[verdicts == verdicts.max()].index)[0]
        ratio = group["grad_ratio_init"].replace([np.inf, -np.inf], np.nan).median()
        rows.append(
            {
                "label": _config_label(group.iloc[0], axes),
                "n": len(group),
                "verdict": top,
                "agree": int(verdicts[top]),
                "stuck": int(group["stuck"].sum()),
                "diverged": int(group["diverged"].sum()),
                "extremity": abs(np.log10(ratio)) if ratio > 0 else np.nan,
                "acc": group["best_val_acc"].median(),
            }
        )
    return pd.DataFrame(rows)


def _config_text(c: pd.Series) -> str:
    verdict = c["verdict"] if c["agree"] == c["n"] else f"{c['verdict']} ({c['agree']}/{c['n']})"
    parts = [f"{c['label']} {verdict}", f"{c['stuck']}/{c['n']} never learned"]
    if c["diverged"]:
        parts.append(f"{c['diverged']}/{c['n']} diverged")
    if np.isfinite(c["acc"]):
        parts.append(f"val. acc. {format_percent(c['acc'])} %")
    return ", ".join(parts)


def telling_configs(configs: pd.DataFrame) -> pd.DataFrame:
    """The worst gradient at initialisation (the ratio farthest from 1), then the config whose
    seeds most often never learned or diverged, if any did."""
    extremity = configs["extremity"].fillna(-1)
    chosen = [int(extremity.idxmax())]
    failing = (configs["stuck"] + configs["diverged"]) / configs["n"]
    if failing.max() > 0 and int(failing.idxmax()) not in chosen:
        chosen.append(int(failing.idxmax()))
    return configs.loc[chosen[:CONFIGS_NAMED]]


def experiment_line(name: str, runs: pd.DataFrame) -> str:
    """``smoke: 4 × 16 sigmoid scaled_normal vanishing throughout, 0/1 never learned, …;
    8 runs at the end: 7 healthy, 1 vanishing``."""
    configs = _configs(runs)
    named = "; ".join(_config_text(c) for _, c in telling_configs(configs).iterrows())
    final = Counter(runs["verdict_final"].fillna("unknown"))
    tally = ", ".join(f"{n} {v}" for v, n in sorted(final.items(), key=lambda kv: -kv[1]))
    n = f"{len(runs)} run{'' if len(runs) == 1 else 's'}"
    return f"{name}: {named}; {n} at the end: {tally}"


def verdict_lines(runs: pd.DataFrame) -> list[str]:
    """One line per experiment (:func:`experiment_line`), in name order."""
    return [experiment_line(str(name), group) for name, group in runs.groupby("experiment")]


# --------------------------------------------------------------------------- failures


@dataclass
class FailedJob:
    rule: str
    wildcards: str = ""
    logs: list[str] = field(default_factory=list)


_JOB = re.compile(r"^(?:local)?rule (\w+):$")
_ERROR = re.compile(r"^Error in rule (\w+):$")
_FIELD = re.compile(r"^\s+(jobid|wildcards|log): (.*)$")


def failed_jobs(log_text: str) -> list[FailedJob]:
    """The jobs Snakemake's log reports as failed ("Error in rule …" blocks), with their
    wildcards (from the job's own block, by job id) and their log files."""
    jobs: dict[str, dict[str, str]] = {}
    errors: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in log_text.splitlines():
        if match := _JOB.match(line):
            current = {"rule": match[1]}
        elif match := _ERROR.match(line):
            current = {"rule": match[1], "error": "yes"}
            errors.append(current)
        elif current is not None and (match := _FIELD.match(line)):
            current[match[1]] = match[2]
            if match[1] == "jobid" and "error" not in current:
                jobs[match[2]] = current
        elif not line.startswith(" "):
            current = None
    failed = []
    for error in errors:
        job = jobs.get(error.get("jobid", ""), {})
        logs = error.get("log", job.get("log", "")).split(" (check log")[0]
        paths = [p.strip() for p in logs.split(",") if p.strip()]
        failed.append(FailedJob(error["rule"], job.get("wildcards", ""), paths))
    return failed


def last_line(path: str | Path, limit: int = 300) -> str:
    """A log's last non-blank line (its error, mostly), cut to ``limit`` characters."""
    try:
        lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    text = next((line for line in reversed(lines) if line), "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def snakemake_words(argv: Sequence[str]) -> list[str] | None:
    """The command line Snakemake was started with (None: not from its command line)."""
    if not argv:
        return None
    program = Path(argv[0]).name
    if program == "snakemake":
        return ["snakemake", *argv[1:]]
    if program == "__main__.py" and Path(argv[0]).parent.name == "snakemake":
        return ["python", "-m", "snakemake", *argv[1:]]
    return None


def resume_command(argv: Sequence[str], incomplete: bool) -> str:
    """The same command again (the run cache keeps every finished run), plus
    ``--rerun-incomplete`` when Snakemake left incomplete outputs behind."""
    words = snakemake_words(argv)
    if words is None:
        return "your snakemake command again" + (" with --rerun-incomplete" if incomplete else "")
    if incomplete and not {"--rerun-incomplete", "--ri"} & set(words):
        words.append("--rerun-incomplete")
    return shlex.join(words)


def configfile_words(argv: Sequence[str]) -> list[str]:
    """The ``--configfile`` and ``--config`` options of a command line (the report needs the
    same sweep, whose name either may set)."""
    words, keep = [], False
    for word in argv[1:]:
        if word.startswith("--config") or word == "-C":
            keep = "=" not in word
            words.append(word)
        elif keep and not word.startswith("-"):
            words.append(word)
        else:
            keep = False
    return words


# --------------------------------------------------------------------------- the page


def _where(results: Path, argv: Sequence[str]) -> list[str]:
    lines = []
    for name, what in (
        ("results.md", "one row per config"),
        ("results_seeds.md", "one row per run"),
    ):
        if (results / name).exists():
            lines.append(f"- {what}: `{results / name}`")
    if (results / "figures").is_dir():
        lines.append(f"- figures: `{results / 'figures'}/` (per experiment in its own folder)")
    report = shlex.join(
        ["snakemake", "--report", str(results / "report.html"), *configfile_words(argv)]
    )
    lines.append(f"- the report with every figure and its caption: `{report}`")
    if (results / "tensorboard").is_dir():
        lines.append(f"- TensorBoard: `tensorboard --logdir {results / 'tensorboard'}`")
    return lines


# per-experiment folders of a sweep's folder (its sweep-wide files are rewritten by each run)
EXPERIMENT_FOLDERS = ("runs", "experiments", "figures", "tensorboard", "batches")


def stale_experiments(results: str | Path, experiments: Iterable[str]) -> dict[str, list[str]]:
    """Experiments that have folders in the sweep's folder ``results`` but are not in its config
    (removed from it, or left by an earlier config of the same name): {experiment: its
    folders}. Other sweeps' folders are their own, never stale."""
    results, current = Path(results), set(experiments)
    stale: dict[str, list[str]] = {}
    for kind in EXPERIMENT_FOLDERS:
        folder = results / kind
        if not folder.is_dir():
            continue
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if sub.name not in current and not (
                kind == "tensorboard" and sub.name == "hparams-config"
            ):
                stale.setdefault(sub.name, []).append(str(sub))
    return stale


def _stale_lines(results: Path, experiments: Iterable[str]) -> list[str]:
    stale = stale_experiments(results, experiments)
    if not stale:
        return []
    lines = ["", "## Not in this config", ""]
    lines += [
        f"- `{name}`: {', '.join(f'`{p}/`' for p in folders)} (removed from this sweep's "
        "config: delete them, or put the experiment back to bring them up to date)"
        for name, folders in stale.items()
    ]
    return lines


def _runs_line(outcomes: Mapping[str, str], table: pd.DataFrame, results: Path) -> str:
    counts = Counter(outcomes.values())
    runs = f"{len(outcomes)} run{'' if len(outcomes) == 1 else 's'}"
    done = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if o != "not finished")
    if counts["not finished"]:
        done += f", {counts['not finished']} not finished"
    if table.empty:
        unknown = (
            f"diverged and never learned: not known before {results / 'runs.parquet'} is rebuilt"
        )
        return f"{runs}: {done}; {unknown}"
    stuck = int(is_stuck(table).sum())
    diverged = int((table["status"] == "diverged").sum())
    return f"{runs}: {done}; {diverged} diverged, {stuck} never learned"


def _failure(
    jobs: Sequence[FailedJob],
    failed_runs: Sequence[str],
    logs: Path,
    snakemake_log: str | None,
    quote_job_logs: bool = True,
) -> list[str]:
    """Each failed job (with its log's last line unless ``quote_job_logs`` is off), the runs
    that failed and their logs."""
    lines = ["", "## What failed", ""]
    for job in jobs:
        where = f" ({job.wildcards})" if job.wildcards else ""
        files = ", ".join(f"`{p}`" for p in job.logs) or "no log"
        lines.append(f"- rule `{job.rule}`{where}: log {files}")
        if quote_job_logs:
            lines += [f"  > {text}" for p in job.logs if (text := last_line(p))]
    if not jobs:
        lines.append("- no failed job found in Snakemake's log")
    shown = {line for line in lines}
    for run_id in failed_runs[:FAILED_RUNS_NAMED]:
        lines.append(f"- run `{run_id}` failed: log `{logs / run_id}.log`")
        text = f"  > {last_line(f'{logs / run_id}.log')}"
        if text != "  > " and text not in shown:  # the same error once
            lines.append(text)
            shown.add(text)
    if len(failed_runs) > FAILED_RUNS_NAMED:
        lines.append(f"- … and {len(failed_runs) - FAILED_RUNS_NAMED} more failed runs")
    if snakemake_log:
        lines.append(f"- Snakemake's own log: `{snakemake_log}`")
    return lines


def summary_text(
    runs: Mapping[tuple[str, str], Mapping[str, Any]],
    since: float,
    *,
    failed: bool = False,
    snakemake_log: str | None = None,
    argv: Sequence[str] = (),
    incomplete: bool = False,
    results: str | Path,
    cache: str | Path = RUN_CACHE,
    logs: str | Path,
    now: float | None = None,
    quote_job_logs: bool = True,
) -> str:
    """The summary as Markdown (module docstring) of the sweep whose folder is ``results``
    (``results/<sweep>``) and whose runs' training logs are in ``logs``; ``quote_job_logs`` off
    leaves out the failed jobs' last log lines (for a terminal that has shown those logs
    already)."""
    results = Path(results)
    now = time.time() if now is None else now
    outcomes = run_outcomes(runs, since, results, cache, logs)
    table = up_to_date_runs(results / "runs.parquet", list(outcomes), results)
    ended = time.strftime("%Y-%m-%d %H:%M", time.localtime(now))
    state = "FAILED, a job did not complete" if failed else "every job completed"
    lines = [
        "# Sweep summary",
        "",
        f"{ended}, after {duration_text(now - since)}: {state}.",
        "",
        f"{_runs_line(outcomes, table, results)}.",
    ]
    if failed:
        failed_runs = [run_id for run_id, outcome in outcomes.items() if outcome == "failed"]
        jobs = failed_jobs(_read(snakemake_log))
        lines += _failure(jobs, failed_runs, Path(logs), snakemake_log, quote_job_logs)
        lines += [
            "",
            "To resume (finished runs are in the run cache and are not trained again):",
            "",
            f"    {resume_command(argv, incomplete)}",
        ]
    lines += ["", "## Where the results are", "", *_where(results, argv)]
    lines += _stale_lines(results, {experiment for experiment, _ in runs})
    if not table.empty:
        lines += ["", "## Verdicts", "", *(f"- {line}" for line in verdict_lines(table))]
    if costs := cost_lines(results):
        lines += ["", "## Costliest jobs", "", *costs]
    return "\n".join(lines) + "\n"


def _read(path: str | None) -> str:
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""


def incomplete_outputs(metadata: str | Path = ".snakemake") -> bool:
    """Snakemake marks the outputs of a job it started and did not see end (``.snakemake/
    incomplete/``); the next run then needs ``--rerun-incomplete``."""
    folder = Path(metadata) / "incomplete"
    return folder.is_dir() and any(folder.iterdir())


def write_summary(
    path: str | Path,
    runs: Mapping[tuple[str, str], Mapping[str, Any]],
    since: float,
    *,
    logs_on_terminal: bool = False,
    **options: Any,
) -> str:
    """:func:`summary_text` (same options), written to ``path`` (results/<sweep>/summary.md);
    returns the text for the terminal, without the failed jobs' log lines where Snakemake
    printed those logs already (``logs_on_terminal``: its show-failed-logs), so a message shows
    once."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if options.get("now") is None:  # one end time, so the file and the terminal agree
        options["now"] = time.time()
    Path(path).write_text(summary_text(runs, since, **options))
    return summary_text(runs, since, quote_job_logs=not logs_on_terminal, **options)
