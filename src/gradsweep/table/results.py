"""results.md, one row per config (gradsweep.table.configs) and a claim's verdict below its
experiment's table (gradsweep.table.claims), beside the per-seed page it links to
(gradsweep.table.seeds)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from gradsweep.io import atomic_path
from gradsweep.reference import CLAIM_METRICS
from gradsweep.stats import METHOD, MIN_INTERVAL_N
from gradsweep.table.claims import claim_section
from gradsweep.table.common import VERDICTS, reference_intro, section_intro
from gradsweep.table.configs import config_table
from gradsweep.table.seeds import seeds_markdown
from gradsweep.verdicts import never_learned

SEEDS_FILE = "results_seeds.md"

CONFIG_INTRO = (
    "Each row below is one **config**: runs that differ only in their random seed. *n* is "
    "the number of seeds. *Never learned* counts the seeds whose best validation accuracy "
    "stayed below twice chance (20 %), with a 95 % interval for how often a seed of that "
    "config fails. Deep nets are a lottery, most seeds learn and some never do, and a mean "
    "over both describes neither: where some seeds of a config never learned, its other "
    "columns (accuracies, ratios, escape epoch) describe **the seeds that learned** and its "
    "verdicts cell ends with the verdict of those that never learned; every seed is in "
    "results_seeds.md. Accuracies (in %) are a mean with its 95 % interval [lo, hi] from 3 "
    "seeds on, with 2 seeds their mean and range (min–max), with 1 seed its number. The "
    "**grad ratio** is the norm of the loss gradient with respect to the biases of the last "
    "hidden layer divided by that of the first hidden layer, both on a fixed probe set of "
    "training images, at initialisation and after the last epoch: ≈ 1 means all layers learn "
    "at a similar speed, ≫ 1 that the first layer learns that many times slower (the "
    "gradient *vanishes* towards the input), ≪ 1 that it *explodes*; ∞ means the first "
    "layer's gradient underflowed to 0; *n/a*: one hidden layer, no ratio. Ratios spread over "
    "decades, so they are summarised by their geometric mean."
)


def _method() -> str:
    return (
        f"Statistics: {METHOD}. Where an experiment reproduces a published number, it is "
        "compared with the seeds that learned: *Δ* is their mean minus the published value "
        "and the last column says whether the published value lies *inside*, *above* or "
        "*below* their interval (with 2 seeds: their range)."
    )


def _seeds_sentence(group: pd.DataFrame) -> str:
    """How many seeds the experiment's configs ran, and what that allows."""
    sizes = group.groupby("config_id").size()
    n_configs = len(sizes)
    if sizes.max() == 1:
        return " One seed per config: single numbers, no intervals."
    if sizes.max() < MIN_INTERVAL_N:
        return f" At most {sizes.max()} seeds per config: means with their range, no intervals."
    few = int((sizes < MIN_INTERVAL_N).sum())
    if few:
        return f" {few} of {n_configs} configs ran fewer than {MIN_INTERVAL_N} seeds: no interval."
    return ""


def _never_sentence(group: pd.DataFrame) -> str:
    """Which configs had seeds that never learned, and what their rows then describe."""
    lost = never_learned(group["best_val_acc"]) if "best_val_acc" in group else None
    if lost is None or not lost.any():
        return ""
    per = lost.groupby(group["config_id"]).agg(["sum", "size"])
    split = int(((per["sum"] > 0) & (per["sum"] < per["size"])).sum())
    text = f" {int(lost.sum())} of {len(group)} runs never learned"
    if split:
        text += (f"; in {split} config{'s' if split != 1 else ''} with seeds on both sides the "
                 "row describes the seeds that learned")  # fmt: skip
    return text + "."


def results_markdown(
    runs: pd.DataFrame,
    references: Mapping[str, Mapping | None] | None = None,
    seeds_link: str | None = SEEDS_FILE,
    metrics: pd.DataFrame | None = None,
) -> str:
    """Markdown results page, one row per config (seeds aggregated), one section per
    experiment; ``seeds_link`` names the per-seed page (:func:`seeds_markdown`). An
    experiment whose reference checks a claim across its configs (reference.CLAIM_METRICS)
    gets its measured verdict below its table; ``bn_speed`` reads ``metrics`` (test accuracy
    per step, metrics.parquet)."""
    references = references or {}
    parts = ["# Results", "", CONFIG_INTRO, "", VERDICTS, "", _method(), ""]
    if seeds_link:
        parts += [f"One row per run (every seed): [{seeds_link}]({seeds_link}).", ""]
    if runs.empty:
        parts += ["No runs found.", ""]
        return "\n".join(parts)
    experiments = runs["experiment"].fillna("(no experiment)")
    for name in sorted(experiments.unique()):
        group = runs[experiments == name]
        intro = section_intro(group)
        n_configs = group["config_id"].nunique()
        intro = intro[:-1] + f" in {n_configs} config{'s' if n_configs != 1 else ''}."
        intro += _seeds_sentence(group) + _never_sentence(group)
        block = references.get(name) or {}
        intro += reference_intro(block)
        parts += [f"## {name}", "", intro, "", config_table(group, references), ""]
        if block and block["metric"] in CLAIM_METRICS:
            parts += [*claim_section(block["metric"], group, metrics), ""]
    return "\n".join(parts)


def write_results(
    runs: pd.DataFrame,
    out: str | Path,
    seeds_out: str | Path,
    references: Mapping[str, Mapping | None] | None = None,
    metrics: pd.DataFrame | None = None,
) -> None:
    """Write results.md (one row per config) and, beside it, the per-seed page it links to."""
    seeds_out = Path(seeds_out)
    link = os.path.relpath(seeds_out, Path(out).parent)
    with atomic_path(out) as tmp:
        tmp.write_text(results_markdown(runs, references, link, metrics), encoding="utf-8")
    with atomic_path(seeds_out) as tmp:
        tmp.write_text(seeds_markdown(runs, references=references), encoding="utf-8")
