# TensorBoard event files (gradsweep.tensorboard): `tensorboard --logdir results/<sweep>/tensorboard`.
# Directory outputs: Snakemake deletes a folder before its job reruns, so a retrained run's
# events replace the old ones instead of piling up beside them.


rule tensorboard_experiment:
    input:
        infos=lambda wildcards: run_outputs("run.json", wildcards.experiment),
        runs=f"{OUT}/experiments/{{experiment}}/runs.parquet",
        traces=lambda wildcards: run_traces(wildcards.experiment),
        metrics=f"{OUT}/experiments/{{experiment}}/metrics.parquet",
        code=script_code("tensorboard.py"),
    output:
        directory(f"{OUT}/tensorboard/{{experiment}}"),
    log:
        f"{LOGS}/tensorboard/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/tensorboard_experiment/{{experiment}}.tsv"
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/tensorboard.py"


# The HParams plugin reads one experiment summary per logdir: one for the whole sweep, in a
# folder whose name no experiment can have (experiment names match [A-Za-z0-9_]+).
rule tensorboard_hparams_config:
    input:
        infos=run_outputs("run.json"),
        code=script_code("tensorboard.py"),
    output:
        directory(f"{OUT}/tensorboard/hparams-config"),
    log:
        f"{LOGS}/tensorboard/hparams-config.log",
    benchmark:
        f"{OUT}/benchmarks/tensorboard_hparams_config.tsv"
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/tensorboard.py"
