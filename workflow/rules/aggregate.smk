rule aggregate:
    input:
        infos=run_outputs("run.json"),
        traces=run_outputs("traces.parquet"),
        metrics=run_outputs("metrics.parquet"),
    output:
        runs="results/runs.parquet",
        traces="results/traces.parquet",
        metrics="results/metrics.parquet",
    log:
        "logs/aggregate.log",
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/aggregate.py"
