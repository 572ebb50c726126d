# Helpers of rules/article.smk (kept apart: Snakemake's linter wants functions and rules in
# separate files).

# Figures drawn only for these experiments (when the config has them): name -> outputs.
ARTICLE_FIGURES = {
    "one_path": ["layers"],
    "nndl_demo": ["speed"],
    "nielsen_init": ["init_norms", "speed"],
}


def article_outputs():
    """The article's figures for the experiments of this config."""
    special = [
        f"results/figures/{experiment}/{name}.png"
        for experiment, names in ARTICLE_FIGURES.items()
        if experiment in EXPERIMENTS
        for name in names
    ]
    return [
        "results/figures/activations.png",
        *special,
        *expand("results/figures/{experiment}/diagnostics.png", experiment=EXPERIMENTS),
    ]


def experiment_tables(experiment):
    """The per-experiment aggregates a figure reads."""
    return {
        table: f"results/experiments/{experiment}/{table}.parquet"
        for table in ("runs", "traces", "metrics")
    }
