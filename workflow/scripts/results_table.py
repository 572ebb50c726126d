"""Snakemake adapter: results/runs.parquet -> Markdown results table (see gradsweep.table)."""

import logging
from pathlib import Path

import pandas as pd

from gradsweep.table import results_markdown

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
runs = pd.read_parquet(smk.input.runs)
out = Path(smk.output[0])
tmp = out.with_name(out.name + ".tmp")
tmp.write_text(results_markdown(runs, references=dict(smk.params.references)), encoding="utf-8")
tmp.replace(out)
logging.info("wrote %s: %d runs in %d experiments", out, len(runs), runs["experiment"].nunique())
