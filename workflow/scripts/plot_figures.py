"""Snakemake adapter: sweep-wide figures from results/*.parquet (see gradsweep.plotting)."""

import logging
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from gradsweep import plotting  # noqa: E402

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
log = logging.getLogger("plot_figures")
logging.captureWarnings(True)

runs = pd.read_parquet(smk.input.runs)
# only the probe bias rows, run by run: step traces can be huge and are not needed here
traces = plotting.read_traces(smk.input.traces, source="probe", param="bias")
log.info("%d runs, %d probe bias trace rows", len(runs), len(traces))

plotting.plot_activation_init_grid(traces, runs, smk.output.activation_init)
log.info("wrote %s", smk.output.activation_init)
plotting.plot_accuracy_vs_depth(runs, smk.output.accuracy_depth)
log.info("wrote %s", smk.output.accuracy_depth)
cells = plotting.plot_ratio_heatmap(runs, smk.output.ratio_heatmap)
log.info("wrote %s:\n%s", smk.output.ratio_heatmap, cells.to_string())
