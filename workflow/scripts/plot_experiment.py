"""Snakemake adapter: one page of an experiment's gradient figures and learning curves
(gradsweep.plotting)."""

import logging
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from gradsweep import plotting  # noqa: E402
from gradsweep.plotting.data import page_runs  # noqa: E402

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
log = logging.getLogger("plot_experiment")
logging.captureWarnings(True)
experiment, page = smk.wildcards.experiment, smk.wildcards.page

runs = pd.read_parquet(smk.input.runs, filters=[("experiment", "==", experiment)])
_, shown = page_runs(runs, page)
log.info("experiment %s, page %r: %d of %d runs", experiment, page, len(shown), len(runs))

# only this page's runs' files, one run at a time, probe and step rows separately, filtered in
# pyarrow: bias rows for the gradients, the kernels' relative updates per epoch and their
# gradient and weight-decay parts for the update sizes (a few hundred probe rows a run); the
# step rows (the bulk: every traced step) reduced run by run to the smoothed lines drawn
UPDATE_COLUMNS = (*plotting.data.TRACE_COLUMNS, "relative_update")
UPDATE_COLUMNS += plotting.gradients.SPLIT_COLUMNS
read = {"path": list(smk.input.traces), "run_ids": shown["run_id"]}
for param, columns, plot, out in (
    ("bias", plotting.data.TRACE_COLUMNS, plotting.plot_gradient_norms, smk.output.gradients),
    ("kernel", UPDATE_COLUMNS, plotting.plot_update_sizes, smk.output.updates),
):
    traces = plotting.read_traces(**read, source="probe", param=param, columns=columns)
    drawn = plot(traces, runs, out, experiment, page)
    log.info("wrote %s from %d probe rows: %d configs", out, len(traces), len(drawn))
    del traces

empty = plotting.read_traces([], source="step")
lines = plotting.gradients.gather_step_lines(
    plotting.gradients.step_lines(rows, shown)
    for rows in plotting.data.iter_traces(**read, source="step", param="bias")
) or plotting.gradients.step_lines(empty, shown)
drawn = plotting.plot_step_traces(lines, runs, smk.output.steps, experiment, page)
log.info("wrote %s from %d smoothed step points: %d configs", smk.output.steps, len(lines.rows),
         len(drawn))  # fmt: skip

# the page's learning curves from its runs' epoch metrics (small: one row per run and epoch)
metrics = pd.read_parquet(smk.input.metrics, filters=[("run_id", "in", list(shown["run_id"]))])
curves = plotting.plot_learning_curves(metrics, runs, smk.output.learning_curves, experiment, page)
log.info("wrote %s from %d metric rows: %d configs", smk.output.learning_curves, len(metrics),
         curves["config_id"].nunique())  # fmt: skip
