"""Snakemake adapter: every run's summary and metrics into results/ (see gradsweep.aggregate)."""

import logging

from gradsweep.aggregate import aggregate

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(filename=smk.log[0], level=logging.INFO)
aggregate(
    infos=list(smk.input.infos),
    traces=list(smk.input.traces),
    metrics=list(smk.input.metrics),
    out_runs=smk.output.runs,
    out_metrics=smk.output.metrics,
)
