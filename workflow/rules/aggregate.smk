rule aggregate_experiment:
    input:
        infos=lambda wildcards: run_outputs("run.json", wildcards.experiment),
        traces=lambda wildcards: run_outputs("traces.parquet", wildcards.experiment),
        metrics=lambda wildcards: run_outputs("metrics.parquet", wildcards.experiment),
        code=script_code("aggregate.py"),
    output:
        runs=f"{OUT}/experiments/{{experiment}}/runs.parquet",
        traces=f"{OUT}/experiments/{{experiment}}/traces.parquet",
        metrics=f"{OUT}/experiments/{{experiment}}/metrics.parquet",
    log:
        f"{LOGS}/aggregate/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/aggregate_experiment/{{experiment}}.tsv"
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/aggregate.py"


# The sweep-wide tables. The small ones feed the table and the sweep figures; the traces,
# as large as all experiments' together, are stacked by a job of their own that nothing
# waits for, so it runs beside the figures instead of before them.
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


rule aggregate_traces:
    input:
        traces=sweep_tables("traces"),
        code=script_code("concatenate.py"),
    output:
        traces=f"{OUT}/traces.parquet",
    log:
        f"{LOGS}/aggregate/traces.log",
    benchmark:
        f"{OUT}/benchmarks/aggregate_traces.tsv"
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/concatenate.py"
