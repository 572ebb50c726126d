rule results_table:
    input:
        runs="results/runs.parquet",
        code=sources("table", "reference"),
    output:
        report(
            "results/results.md",
            caption="../report/results_table.rst",
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
        traces="results/traces.parquet",
        metrics="results/metrics.parquet",
        code=sources("plots", "table"),
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


rule plot_experiment:
    input:
        runs="results/experiments/{experiment}/runs.parquet",
        traces="results/experiments/{experiment}/traces.parquet",
        metrics="results/experiments/{experiment}/metrics.parquet",
        code=sources("plots", "table"),
    output:
        gradients=report(
            "results/figures/{experiment}/gradients.png",
            caption="../report/gradients.rst",
            category="Experiments",
            subcategory="{experiment}",
        ),
        steps=report(
            "results/figures/{experiment}/steps.png",
            caption="../report/steps.rst",
            category="Experiments",
            subcategory="{experiment}",
        ),
    log:
        "logs/plot_experiment/{experiment}.log",
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/plot_experiment.py"
