"""Snakemake adapter: per-experiment gradient figures (see gradsweep.plots)."""

import logging
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from gradsweep import plots  # noqa: E402

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
log = logging.getLogger("plot_experiment")
logging.captureWarnings(True)
experiment = smk.wildcards.experiment

runs = pd.read_parquet(smk.input.runs, filters=[("experiment", "==", experiment)])
log.info("experiment %s: %d runs", experiment, len(runs))

# read probe and step rows separately, filtered in pyarrow, bias only
probe = plots.read_traces(smk.input.traces, experiment=experiment, source="probe")
plots.plot_gradient_norms(probe, runs, smk.output.gradients, experiment)
log.info("wrote %s from %d probe rows", smk.output.gradients, len(probe))
del probe

steps = plots.read_traces(smk.input.traces, experiment=experiment, source="step")
plots.plot_step_traces(steps, runs, smk.output.steps, experiment)
log.info("wrote %s from %d step rows", smk.output.steps, len(steps))
