"""Snakemake adapter: stack the per-experiment aggregates into results/ (gradsweep.aggregate)."""

import logging

from gradsweep.aggregate import concatenate

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(filename=smk.log[0], level=logging.INFO)
for name, out in smk.output.items():  # runs and metrics
    concatenate(list(smk.input[name]), out)
