"""Run the real workflow in a throwaway copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gradsweep.io import trace_path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGFILE = "config/config.yaml"


def sweep_folder(configfile: str | None = None, config: Mapping[str, Any] | None = None) -> str:
    """``results/<sweep>``, relative to the working directory, of the sweep run with
    ``--configfile configfile`` (None: none): the ``sweep`` key of its ``config`` if given and
    set, else the file's name without ``.yaml``, ``default`` for config/config.yaml (README's
    rule, written out here apart from gradsweep.config.sweep_name)."""
    if config and config.get("sweep"):
        return f"results/{config['sweep']}"
    if configfile in (None, DEFAULT_CONFIGFILE):
        return "results/default"
    return f"results/{Path(configfile).stem}"


def copy_workflow(dest: Path) -> Path:
    for part in ("workflow", "config"):
        shutil.copytree(REPO / part, dest / part)
    return dest


def snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir``; ``env`` replaces the environment (default: inherited)."""
    result = subprocess.run(
        ["snakemake", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    if check and result.returncode:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def copy_checkout(dest: Path) -> Path:
    """Like ``copy_workflow``, plus ``src/``: the copy then runs its own ``gradsweep`` (the
    Snakefile puts ``<copy>/src`` first on ``sys.path`` and ``PYTHONPATH``), so a test may edit
    or touch the package's modules in the copy without touching the repository."""
    copy_workflow(dest)
    shutil.copytree(
        REPO / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    return dest


def copy_finished(src: Path, dest: Path) -> Path:
    """A copy of a finished working directory (results, logs, ``.snakemake/`` metadata) that
    keeps every file's mtime, so Snakemake sees the same state as in ``src``, and the hard
    links between a sweep's run files and the run cache (``cp -a``)."""
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    return dest


def without_slurm_settings(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus the ``GRADSWEEP_SLURM_*`` variables the SLURM profile reads."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items() if not k.startswith("GRADSWEEP_SLURM_")}


_RULE = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")
_WILDCARDS = re.compile(r"^\s*wildcards: (.*)$")
_REASON = re.compile(r"^\s*reason: (.*)$")
_INPUT = re.compile(r"^\s*input: (.*)$")
_PRIORITY = re.compile(r"^\s*priority: (\S+)$")


def job_stats(output: str) -> Counter[str]:
    """Jobs per rule from the first "Job stats" table Snakemake prints (empty: nothing to do)."""
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return Counter()
    counts: Counter[str] = Counter()
    for line in lines[lines.index("Job stats:") + 3 :]:  # skip the header and the dashes
        rule, _, count = line.rpartition(" ")
        if rule.strip() == "total":
            assert sum(counts.values()) == int(count), output
            return counts
        counts[rule.strip()] = int(count)
    raise AssertionError(f"no end of the job stats table in:\n{output}")


def planned_jobs(output: str) -> list[dict[str, str]]:
    """Every job block of a dry run, in order: ``{"rule": ..., "reason": ..., **wildcards}``,
    plus ``input`` and ``priority`` where Snakemake prints them (it omits priority 0)."""
    jobs: list[dict[str, str]] = []
    for line in output.splitlines():
        if match := _RULE.match(line):
            jobs.append({"rule": match[1]})
        elif jobs and (match := _WILDCARDS.match(line)):
            jobs[-1].update(item.split("=", 1) for item in match[1].split(", "))
        elif jobs and (match := _REASON.match(line)):
            jobs[-1]["reason"] = match[1]
        elif jobs and (match := _INPUT.match(line)):
            jobs[-1]["input"] = match[1]
        elif jobs and (match := _PRIORITY.match(line)):
            jobs[-1]["priority"] = match[1]
    return jobs


def group_jobs(output: str) -> list[list[dict[str, str]]]:
    """The jobs of each group job a dry run plans (only remote executors plan group jobs)."""
    parts = re.split(r"^.*Group job \S+ \(jobs in lexicogr\. order\):$", output, flags=re.M)
    groups = []
    for part in parts[1:]:
        # a group's jobs are indented; the first unindented line ends the group
        block = []
        for line in part.splitlines()[1:]:
            if line and not line.startswith(" ") and not line.startswith("Shell command"):
                break
            block.append(line)
        groups.append(planned_jobs("\n".join(block)))
    return groups


def most_at_once(output: str, rule: str) -> int:
    """The most ``rule`` jobs running at the same time in a real run's log: +1 when Snakemake
    announces a job of the rule, -1 at its "Finished jobid: N (Rule: rule)"."""
    running = most = 0
    for line in output.splitlines():
        if (match := _RULE.match(line)) and match[1] == rule:
            running += 1
            most = max(most, running)
        elif line.startswith("Finished jobid:") and line.endswith(f"(Rule: {rule})"):
            running -= 1
    assert running == 0, f"unfinished {rule} jobs in:\n{output}"
    return most


def dry_run(workdir: Path, *args: str, env: dict[str, str] | None = None) -> tuple:
    """``snakemake --dry-run``: (jobs per rule, planned jobs, the whole output)."""
    result = snakemake(workdir, *args, "--dry-run", env=env)
    output = result.stdout + result.stderr
    return job_stats(output), planned_jobs(output), output


def run_file(sweep_dir: Path, run_id: str, name: str) -> Path:
    """A run's ``traces.parquet`` (in the sweep's traces/ folder) or other file (its runs/)."""
    if name == "traces.parquet":
        return trace_path(sweep_dir, *run_id.split("/"))
    return sweep_dir / "runs" / run_id / name
