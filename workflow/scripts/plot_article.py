"""Snakemake adapter: the article's figures (see gradsweep.plotting), one rule each."""

import logging
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from gradsweep import plotting  # noqa: E402

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
log = logging.getLogger(smk.rule)
logging.captureWarnings(True)
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)


def experiment_data(source, columns=None):
    """The experiment's runs and its bias-gradient trace rows of one source."""
    experiment = smk.params.experiment
    runs = pd.read_parquet(smk.input.runs, filters=[("experiment", "==", experiment)])
    kwargs = {"columns": columns} if columns else {}
    traces = plotting.read_traces(smk.input.traces, experiment=experiment, source=source, **kwargs)
    log.info("experiment %s: %d runs, %d %s trace rows", experiment, len(runs), len(traces), source)
    return experiment, runs, traces


def activations():
    plotting.plot_activations(smk.output[0])


def one_path():
    experiment, runs, probe = experiment_data("probe")
    summary = plotting.plot_layer_panels(probe, runs, smk.output.layers, experiment)
    log.info("probe bias-gradient norm per layer:\n%s", summary)


def nndl_demo():
    experiment, runs, steps = experiment_data("step")
    summary = plotting.plot_speed_of_learning(steps, runs, smk.output.speed, experiment)
    log.info("median step bias-gradient norms:\n%s", summary)


def nielsen_init():
    experiment, runs, probe = experiment_data("probe")
    reference = smk.params.reference
    table = plotting.plot_init_norms(probe, runs, reference, smk.output.init_norms, experiment)
    log.info("norms at initialisation vs published:\n%s", table)
    summary = plotting.plot_speed_of_learning(
        probe, runs, smk.output.speed, experiment, source="probe", reference=reference
    )
    log.info("median probe bias-gradient norms over the epochs:\n%s", summary)


def remedies():
    runs = pd.read_parquet(smk.input.runs, filters=[("experiment", "==", smk.params.experiment)])
    table = plotting.plot_remedies_heatmap(runs, smk.output.remedies, smk.params.experiment)
    log.info("remedies per config:\n%s", table.drop(columns="config_id").to_string())


def batch_norm_sigmoid():
    experiment = smk.params.experiment
    runs = pd.read_parquet(smk.input.runs, filters=[("experiment", "==", experiment)])
    metrics = pd.read_parquet(smk.input.metrics, filters=[("experiment", "==", experiment)])
    traces = plotting.read_traces(
        smk.input.traces, experiment=experiment, source="probe", param=None,
        columns=plotting.remedies.BN_COLUMNS,
    )  # fmt: skip
    table = plotting.plot_bn_distribution(
        metrics, traces, runs, smk.output.bn_distribution, experiment
    )
    log.info("accuracy and percentile drift per config:\n%s", table.to_string())


def edge_of_chaos():
    experiment = smk.params.experiment
    runs = pd.read_parquet(smk.input.runs, filters=[("experiment", "==", experiment)])
    metrics = pd.read_parquet(smk.input.metrics, filters=[("experiment", "==", experiment)])
    table = plotting.plot_trainability(runs, metrics, smk.output.trainability, experiment)
    log.info("trainability per config:\n%s", table.drop(columns="config_id").to_string())
    slopes = plotting.plot_slopes(runs, smk.output.slopes, experiment)
    log.info("gradient slopes per config:\n%s", slopes.to_string())


def diagnostics():
    experiment, runs, probe = experiment_data("probe", plotting.DIAGNOSTIC_COLUMNS)
    summary = plotting.plot_diagnostics(probe, runs, smk.output.diagnostics, experiment)
    log.info("diagnostics at the first and last epoch:\n%s", summary.to_string())


FIGURES = {
    "plot_activations": activations,
    "plot_one_path": one_path,
    "plot_nndl_demo": nndl_demo,
    "plot_nielsen_init": nielsen_init,
    "plot_remedies": remedies,
    "plot_batch_norm_sigmoid": batch_norm_sigmoid,
    "plot_edge_of_chaos": edge_of_chaos,
    "plot_diagnostics": diagnostics,
}
FIGURES[smk.rule]()
log.info("wrote %s", ", ".join(smk.output))
