"""What a sweep is about to do, before any job runs: per experiment, how many runs train, how
many come from the run cache and how many are already done.

The Snakefile calls :func:`plan_sweep` when it is parsed (dry run or real) and prints
:func:`plan_lines`, one line per experiment (and a total when there are several)::

    Plan for smoke: 4 to train, 8 from the cache, 0 done (12 runs, 1 train job)

It reads what Snakemake's own decision rests on, cheaply (no TensorFlow, one ``stat`` per cache
file, one small JSON per run and per batch manifest): a run is *done* when its
``results/<sweep>/runs/<experiment>/<run>/run.json`` holds its current config, it was placed
from the batch it is in now (no other batch's manifest lists it: a grid change can shift runs
into other batches, and Snakemake places a moved run again), and its batch job does not rerun. A
batch job reruns when its manifest lists other members than the config now plans (its params
changed: a member was added, removed, renamed or changed), or when the manifest is missing and
one of its runs is not done. Every member of a rerunning batch, and every run that is not done,
comes *from the cache* when its entry is complete, else it *trains*.

What the plan cannot foresee: ``--forcerun`` / ``-F`` (Snakemake decides that after parsing)
and mtime-only triggers (a rebuilt data file). Those reruns still only train what the run cache
lacks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsweep.batches import RUN_CACHE, cache_entry, is_cached
from gradsweep.settings import digest

OUTCOMES = ("train", "cache", "done")


@dataclass
class ExperimentPlan:
    """An experiment's runs by what happens to them, and the train jobs that run."""

    train: int = 0
    cache: int = 0
    done: int = 0
    jobs: int = 0

    @property
    def runs(self) -> int:
        return self.train + self.cache + self.done

    def add(self, other: ExperimentPlan) -> ExperimentPlan:
        return ExperimentPlan(*(getattr(self, k) + getattr(other, k) for k in (*OUTCOMES, "jobs")))


def run_json(results: str | Path, experiment: str, run: str) -> Path:
    return Path(results) / "runs" / experiment / run / "run.json"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or cut short: as if it were not there
        return None


def run_is_current(path: str | Path, cfg: Mapping[str, Any]) -> bool:
    """A run's results/<sweep>/runs/…/run.json exists and holds the run's current config."""
    info = _read_json(Path(path))
    return isinstance(info, dict) and digest(info.get("config")) == digest(dict(cfg))


def manifest_members(path: str | Path) -> list[tuple[str, str]] | None:
    """A batch manifest's members as (run_id, cache key), in order (None: no manifest)."""
    manifest = _read_json(Path(path))
    if not isinstance(manifest, dict):
        return None
    try:
        return [(m["run_id"], Path(m["cache"]).name) for m in manifest["runs"]]
    except (KeyError, TypeError):
        return None


def experiment_manifests(results: str | Path, experiment: str) -> dict[str, list[tuple[str, str]]]:
    """{batch id: members} of every manifest the experiment's folder holds, planned or not."""
    found = {}
    for path in sorted((Path(results) / "batches" / experiment).glob("b*.json")):
        if (members := manifest_members(path)) is not None:
            found[path.stem] = members
    return found


def plan_batch(
    batch: str,
    configs: Sequence[Mapping[str, Any]],
    manifests: Mapping[str, Sequence[tuple[str, str]]],
    results: str | Path,
    cache: str | Path,
) -> tuple[list[str], bool]:
    """Each member's outcome (``train``, ``cache`` or ``done``) and whether the batch's train
    job runs, from its members' configs in training order and the experiment's manifests."""
    entries = [cache_entry(cache, cfg) for cfg in configs]
    planned = [
        (f"{c['experiment']}/{c['run']}", e.name) for c, e in zip(configs, entries, strict=True)
    ]
    # a run that another batch's manifest lists, and this one's does not, was placed from that
    # batch: its run_files job has a new input now, so Snakemake places it again
    here = {run_id for run_id, _ in manifests.get(batch, ())}
    elsewhere = {run_id for b, members in manifests.items() if b != batch for run_id, _ in members}
    done = [
        (run_id in here or run_id not in elsewhere)
        and run_is_current(run_json(results, c["experiment"], c["run"]), c)
        for c, (run_id, _) in zip(configs, planned, strict=True)
    ]
    recorded = manifests.get(batch)
    # A missing manifest is rebuilt only if a run needs it; else the job reruns when its params
    # (the members' digest) changed.
    reruns = not all(done) if recorded is None else list(recorded) != planned
    outcomes = [
        "done" if is_done and not reruns else "cache" if is_cached(entry) else "train"
        for is_done, entry in zip(done, entries, strict=True)
    ]
    return outcomes, reruns


def plan_sweep(
    runs: Mapping[tuple[str, str], Mapping[str, Any]],
    batches: Mapping[tuple[str, str], Sequence[str]],
    results: str | Path,
    cache: str | Path = RUN_CACHE,
) -> dict[str, ExperimentPlan]:
    """{experiment: its plan} for the runs ``{(experiment, run): config}`` in their batches
    ``{(experiment, batch id): [run names]}`` (gradsweep.batches.plan_batches), whose outputs
    are in the sweep's folder ``results`` (``results/<sweep>``)."""
    plans: dict[str, ExperimentPlan] = {}
    manifests: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for (experiment, batch), names in sorted(batches.items()):
        if experiment not in manifests:
            manifests[experiment] = experiment_manifests(results, experiment)
        configs = [runs[(experiment, name)] for name in names]
        outcomes, reruns = plan_batch(batch, configs, manifests[experiment], results, cache)
        plan = plans.setdefault(experiment, ExperimentPlan())
        for outcome in outcomes:
            setattr(plan, outcome, getattr(plan, outcome) + 1)
        plan.jobs += reruns
    return plans


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def plan_line(name: str, plan: ExperimentPlan) -> str:
    """``4 to train, 8 from the cache, 0 done (12 runs, 1 train job)``, after ``name``."""
    jobs = f", {_count(plan.jobs, 'train job')}" if plan.jobs else ""
    return (
        f"{name}: {plan.train} to train, {plan.cache} from the cache, {plan.done} done "
        f"({_count(plan.runs, 'run')}{jobs})"
    )


def plan_lines(plans: Mapping[str, ExperimentPlan]) -> list[str]:
    """One line per experiment, then (with several) the total over all of them."""
    lines = [plan_line(f"Plan for {name}", plan) for name, plan in sorted(plans.items())]
    if len(plans) < 2:
        return lines
    total = ExperimentPlan()
    for plan in plans.values():
        total = total.add(plan)
    return [*lines, plan_line(f"Plan in all ({len(plans)} experiments)", total)]
