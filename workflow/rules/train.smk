rule train:
    input:
        data=run_data,
    output:
        traces="results/runs/{experiment}/{run}/traces.parquet",
        metrics="results/runs/{experiment}/{run}/metrics.parquet",
        info="results/runs/{experiment}/{run}/run.json",
    log:
        "logs/train/{experiment}/{run}.log",
    conda:
        "../envs/gradsweep.yaml"
    threads: TRAIN["threads"]
    resources:
        mem_mb=TRAIN["mem_mb"],
        runtime=TRAIN["runtime"],
        gpu=TRAIN["gpu"],
        cpus=min(TRAIN["threads"], CPUS),
    params:
        run=run_config,
        checkpoint_dir=lambda wildcards: f"results/checkpoints/{wildcards.experiment}/{wildcards.run}",
    script:
        "../scripts/train.py"
