rule aggregate_experiment:
    input:
        infos=lambda wildcards: run_outputs("run.json", wildcards.experiment),
        traces=lambda wildcards: run_outputs("traces.parquet", wildcards.experiment),
        metrics=lambda wildcards: run_outputs("metrics.parquet", wildcards.experiment),
        code=sources("aggregate", "reference", "stats"),
    output:
        runs="results/experiments/{experiment}/runs.parquet",
        traces="results/experiments/{experiment}/traces.parquet",
        metrics="results/experiments/{experiment}/metrics.parquet",
    log:
        "logs/aggregate/{experiment}.log",
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/aggregate.py"


rule aggregate:
    input:
        runs=expand(
            "results/experiments/{experiment}/runs.parquet", experiment=EXPERIMENTS
        ),
        traces=expand(
            "results/experiments/{experiment}/traces.parquet", experiment=EXPERIMENTS
        ),
        metrics=expand(
            "results/experiments/{experiment}/metrics.parquet", experiment=EXPERIMENTS
        ),
    output:
        runs="results/runs.parquet",
        traces="results/traces.parquet",
        metrics="results/metrics.parquet",
    log:
        "logs/aggregate/all.log",
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/concatenate.py"
