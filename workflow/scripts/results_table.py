"""Snakemake adapter: results/runs.parquet -> results.md (per config) and the per-seed page
(see gradsweep.table)."""

import logging

import pandas as pd

from gradsweep.table import write_results

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
runs = pd.read_parquet(smk.input.runs)
write_results(runs, smk.output.table, smk.output.seeds, dict(smk.params.references))
logging.info(
    "wrote %s and %s: %d runs, %d configs, %d experiments",
    smk.output.table,
    smk.output.seeds,
    len(runs),
    runs["config_id"].nunique(),
    runs["experiment"].nunique(),
)
