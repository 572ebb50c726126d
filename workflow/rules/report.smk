rule results_table:
    input:
        runs="results/runs.parquet",
        metrics="results/metrics.parquet",
        code=script_code("results_table.py"),
    output:
        table=report(
            "results/results.md",
            caption="../report/results_table.rst",
            category="Results table",
        ),
        seeds=report(
            "results/results_seeds.md",
            caption="../report/results_seeds.rst",
            category="Results table",
        ),
    log:
        "logs/results_table.log",
    conda:
        "../envs/gradsweep.yaml"
    params:
        references=lambda wildcards: {
            name: experiment.get("reference")
            for name, experiment in sorted(config["experiments"].items())
        },
    script:
        "../scripts/results_table.py"


rule plot_figures:
    input:
        runs="results/runs.parquet",
        traces=sweep_tables("traces"),
        code=script_code("plot_figures.py"),
    output:
        activation_init=report(
            "results/figures/activation_init.png",
            caption="../report/activation_init.rst",
            category="Sweep",
        ),
        accuracy_depth=report(
            "results/figures/accuracy_depth.png",
            caption="../report/accuracy_depth.rst",
            category="Sweep",
        ),
        ratio_heatmap=report(
            "results/figures/ratio_heatmap.png",
            caption="../report/ratio_heatmap.rst",
            category="Sweep",
        ),
    log:
        "logs/plot_figures.log",
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/plot_figures.py"


# One job per page of an experiment's gradient figures and learning curves: `{page}` is ""
# when all its configs fit in one image, else e.g. "-initglorot_uniform-width16"
# (gradsweep.plotting.data.pages; the list is computed from the config when the workflow is
# parsed, figure_pages()).
rule plot_experiment:
    input:
        runs="results/experiments/{experiment}/runs.parquet",
        traces="results/experiments/{experiment}/traces.parquet",
        metrics="results/experiments/{experiment}/metrics.parquet",
        code=script_code("plot_experiment.py"),
    output:
        gradients=report(
            "results/figures/{experiment}/gradients{page}.png",
            caption="../report/gradients.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "gradients per epoch", "page": "{page}"},
        ),
        steps=report(
            "results/figures/{experiment}/steps{page}.png",
            caption="../report/steps.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "gradients per step", "page": "{page}"},
        ),
        updates=report(
            "results/figures/{experiment}/updates{page}.png",
            caption="../report/updates.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "update sizes per epoch", "page": "{page}"},
        ),
        learning_curves=report(
            "results/figures/{experiment}/learning_curves{page}.png",
            caption="../report/learning_curves.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "learning curves", "page": "{page}"},
        ),
    log:
        "logs/plot_experiment/{experiment}{page}.log",
    wildcard_constraints:
        page=r"(-[A-Za-z0-9_.+-]+)?",
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/plot_experiment.py"
