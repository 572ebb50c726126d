# Helpers of rules/article.smk and the figure lists of final_outputs() (kept apart:
# Snakemake's linter wants functions and rules in separate files).
from gradsweep.plotting.data import page_suffixes
from gradsweep.settings import settings_frame

# every run's settings as runs.parquet will hold them: figure pages are known before any run
SETTINGS = settings_frame(RUNS.values())

# Figures drawn only for these experiments (when the config has them): name -> outputs.
ARTICLE_FIGURES = {
    "one_path": ["layers"],
    "nndl_demo": ["speed"],
    "nielsen_init": ["init_norms", "speed"],
    "remedies": ["remedies"],
    "batch_norm_sigmoid": ["bn_distribution"],
    "edge_of_chaos": ["trainability", "slopes"],
}


def article_outputs():
    """The article's figures for the experiments of this config."""
    special = [
        f"{OUT}/figures/{experiment}/{name}.png"
        for experiment, names in ARTICLE_FIGURES.items()
        if experiment in EXPERIMENTS
        for name in names
    ]
    return [
        f"{OUT}/figures/activations.png",
        *special,
        *expand(
            f"{OUT}/figures/{{experiment}}/diagnostics.png", experiment=EXPERIMENTS
        ),
    ]


def experiment_tables(experiment):
    """The per-experiment aggregates a figure reads, and its runs' traces."""
    return {
        "runs": f"{OUT}/experiments/{experiment}/runs.parquet",
        "traces": run_traces(experiment),
        "metrics": f"{OUT}/experiments/{experiment}/metrics.parquet",
    }


def figure_pages(experiment):
    """Suffixes of an experiment's gradient-figure pages ("" when one image holds it all)."""
    return page_suffixes(SETTINGS[SETTINGS["experiment"] == experiment])


def experiment_figures():
    """Every page of every experiment's gradients, steps, updates and learning-curve
    figures."""
    return [
        f"{OUT}/figures/{experiment}/{name}{page}.png"
        for experiment in EXPERIMENTS
        for page in figure_pages(experiment)
        for name in ("gradients", "steps", "updates", "learning_curves")
    ]
