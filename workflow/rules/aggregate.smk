rule aggregate_experiment:
    input:
        infos=lambda wildcards: run_outputs("run.json", wildcards.experiment),
        traces=lambda wildcards: run_traces(wildcards.experiment),
        metrics=lambda wildcards: run_outputs("metrics.parquet", wildcards.experiment),
        code=script_code("aggregate.py"),
    output:
        runs=f"{OUT}/experiments/{{experiment}}/runs.parquet",
        metrics=f"{OUT}/experiments/{{experiment}}/metrics.parquet",
    log:
        f"{LOGS}/aggregate/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/aggregate_experiment/{{experiment}}.tsv"
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/aggregate.py"


# The sweep-wide tables, which feed the table and the sweep figures. The traces are not
# stacked: results/<sweep>/traces/ reads as one table already (docs/outputs.md).
rule aggregate:
    input:
        runs=sweep_tables("runs"),
        metrics=sweep_tables("metrics"),
        code=script_code("concatenate.py"),
    output:
        runs=f"{OUT}/runs.parquet",
        metrics=f"{OUT}/metrics.parquet",
    log:
        f"{LOGS}/aggregate/all.log",
    benchmark:
        f"{OUT}/benchmarks/aggregate.tsv"
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/concatenate.py"
