rule results_table:
    input:
        runs=f"{OUT}/runs.parquet",
        metrics=f"{OUT}/metrics.parquet",
        code=script_code("results_table.py"),
    output:
        table=report(
            f"{OUT}/results.md",
            caption="../report/results_table.rst",
            category="Results table",
        ),
        seeds=report(
            f"{OUT}/results_seeds.md",
            caption="../report/results_seeds.rst",
            category="Results table",
        ),
    log:
        f"{LOGS}/results_table.log",
    benchmark:
        f"{OUT}/benchmarks/results_table.tsv"
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
        runs=f"{OUT}/runs.parquet",
        traces=run_traces(),
        code=script_code("plot_figures.py"),
    output:
        activation_init=report(
            f"{OUT}/figures/activation_init.png",
            caption="../report/activation_init.rst",
            category="Sweep",
        ),
        accuracy_depth=report(
            f"{OUT}/figures/accuracy_depth.png",
            caption="../report/accuracy_depth.rst",
            category="Sweep",
        ),
        ratio_heatmap=report(
            f"{OUT}/figures/ratio_heatmap.png",
            caption="../report/ratio_heatmap.rst",
            category="Sweep",
        ),
    log:
        f"{LOGS}/plot_figures.log",
    benchmark:
        f"{OUT}/benchmarks/plot_figures.tsv"
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
        runs=f"{OUT}/experiments/{{experiment}}/runs.parquet",
        traces=lambda wildcards: run_traces(wildcards.experiment),
        metrics=f"{OUT}/experiments/{{experiment}}/metrics.parquet",
        code=script_code("plot_experiment.py"),
    output:
        gradients=report(
            f"{OUT}/figures/{{experiment}}/gradients{{page}}.png",
            caption="../report/gradients.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "gradients per epoch", "page": "{page}"},
        ),
        steps=report(
            f"{OUT}/figures/{{experiment}}/steps{{page}}.png",
            caption="../report/steps.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "gradients per step", "page": "{page}"},
        ),
        updates=report(
            f"{OUT}/figures/{{experiment}}/updates{{page}}.png",
            caption="../report/updates.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "update sizes per epoch", "page": "{page}"},
        ),
        learning_curves=report(
            f"{OUT}/figures/{{experiment}}/learning_curves{{page}}.png",
            caption="../report/learning_curves.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"figure": "learning curves", "page": "{page}"},
        ),
    log:
        f"{LOGS}/plot_experiment/{{experiment}}{{page}}.log",
    benchmark:
        f"{OUT}/benchmarks/plot_experiment/{{experiment}}{{page}}.tsv"
    wildcard_constraints:
        page=r"(-[A-Za-z0-9_.+-]+)?",
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/plot_experiment.py"
