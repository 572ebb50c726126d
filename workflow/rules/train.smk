rule train:
    input:
        data=run_data,
    output:
        traces="results/runs/{experiment}/{run}/traces.parquet",
        metrics="results/runs/{experiment}/{run}/metrics.parquet",
        info="results/runs/{experiment}/{run}/run.json",
    params:
        run=run_config,
        checkpoint_dir=lambda wildcards: f"results/checkpoints/{wildcards.experiment}/{wildcards.run}",
    log:
        "logs/train/{experiment}/{run}.log",
    threads: TRAIN["threads"]
    resources:
        mem_mb=TRAIN["mem_mb"],
        runtime=TRAIN["runtime"],
        gpu=TRAIN["gpu"],
    script:
        "../scripts/train.py"
