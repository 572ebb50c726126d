"""Snakemake adapter: results/runs.parquet -> results.md (per config) and the per-seed page
(see gradsweep.table.results)."""

import logging

import pandas as pd

from gradsweep.reference import CLAIM_METRICS
from gradsweep.table.results import write_results

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
runs = pd.read_parquet(smk.input.runs)
references = dict(smk.params.references)
# the test and training accuracy per step, only for experiments whose claim needs them
# (bn_speed: test; trainable_depth, isometry_speed: training)
claims = [name for name, ref in references.items() if (ref or {}).get("metric") in CLAIM_METRICS]
metrics = pd.read_parquet(
    smk.input.metrics,
    columns=["run_id", "experiment", "epoch", "step", "test_acc", "train_acc"],
    filters=[("experiment", "in", claims)] if claims else [("experiment", "==", "")],
)
write_results(runs, smk.output.table, smk.output.seeds, references, metrics)
logging.info(
    "wrote %s and %s: %d runs, %d configs, %d experiments",
    smk.output.table,
    smk.output.seeds,
    len(runs),
    runs["config_id"].nunique(),
    runs["experiment"].nunique(),
)
