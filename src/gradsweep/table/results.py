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
from gradsweep.stats import METHOD
from gradsweep.table.claims import claim_section
from gradsweep.table.common import VERDICTS, reference_intro, section_intro
from gradsweep.table.configs import config_table
from gradsweep.table.seeds import seeds_markdown

SEEDS_FILE = "results_seeds.md"

CONFIG_INTRO = (
    "Each row below is one **config**: runs that differ only in their random seed. *n* is "
    "the number of seeds. Accuracies (in %) are given as the mean and its 95 % interval "
    "[lo, hi], then the median and the min–max range over the seeds; *never learned* counts "
    "runs whose best validation accuracy stayed below twice chance (20 %). A mean with a "
    "wide interval and a low minimum means some seeds learned and others did not: read the "
    "median and the range too. The **grad ratio** is the norm of the loss gradient with "
    "respect to the biases of the last hidden layer divided by that of the first hidden "
    "layer, both on a fixed probe set of training images, at initialisation and after the "
    "last epoch: ≈ 1 means all layers learn at a similar speed, ≫ 1 that the first layer "
    "learns that many times slower (the gradient *vanishes* towards the input), ≪ 1 that it "
    "*explodes*; ∞ means the first layer's gradient underflowed to 0. Ratios spread over "
    "decades, so they are summarised by their geometric mean."
)


def _method() -> str:
    return (
        f"Statistics: {METHOD}. With a single seed there is no interval "
        "(*n = 1, no interval*). Where an experiment reproduces a published number, *Δ* is "
        "our mean minus the published value and the last column says whether the published "
        "value lies *inside*, *above* or *below* our interval."
    )


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
        singles = int((group.groupby("config_id").size() == 1).sum())
        if singles:
            which = "every config" if singles == n_configs else f"{singles} config(s)"
            intro += f" n = 1, no interval: {which} ran a single seed."
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
