# One job per batch of runs (gradsweep.batches, docs/batches.md): it trains the runs that are
# not in the run cache, in one process, then writes the batch's manifest. Its params hold a
# digest of the members' configs, so a changed, added or removed member reruns the batch,
# whose unchanged members come from the cache untrained. The job finds the configs themselves
# from the sweep's config (gradsweep.batches.batch_members) and checks them against the
# digest: the params stay short, and "Params have changed" stays one line.
rule train:
    input:
        data=batch_data,
    output:
        manifest=f"{OUT}/batches/{{experiment}}/{{batch}}.json",
    log:
        f"{LOGS}/train/{{experiment}}/{{batch}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{experiment}}/{{batch}}.tsv"
    priority: batch_priority
    conda:
        "../envs/gradsweep.yaml"
    threads: TRAIN["threads"]
    resources:
        mem_mb=TRAIN["mem_mb"],
        runtime=batch_runtime,
        gpu=TRAIN["gpu"],
        cpus=min(TRAIN["threads"], CPUS),
    params:
        members=batch_digest,
        cache=RUN_CACHE,
        checkpoints=f"{OUT}/checkpoints",
        logs=TRAIN_LOGS,
    script:
        "../scripts/train.py"


# A run's own files, from the run cache (hard links, or copies across file systems), its
# traces in the sweep's hive-partitioned traces/ folder (their only copy besides the cache
# entry they link to, docs/outputs.md): a deleted run folder comes back without training, and Snakemake's deleting the outputs of a
# failed batch never reaches finished runs. A local shell job: Snakemake runs it at once,
# where a `run:` job would start a Python that parses the workflow again.
localrules:
    run_files,


rule run_files:
    input:
        run_batch,
    output:
        traces=f"{OUT}/traces/experiment={{experiment}}/{{run}}.parquet",
        metrics=f"{OUT}/runs/{{experiment}}/{{run}}/metrics.parquet",
        info=f"{OUT}/runs/{{experiment}}/{{run}}/run.json",
    log:
        f"{LOGS}/run_files/{{experiment}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/run_files/{{experiment}}/{{run}}.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        entry=run_cache_entry,
        run_id=lambda wildcards: f"{wildcards.experiment}/{wildcards.run}",
        out_dir=lambda wildcards, output: os.path.dirname(output.info),
    shell:
        PUBLISH
        + " {params.entry:q} {params.run_id:q} {params.out_dir:q}"
        + " --traces {output.traces:q} > {log:q} 2>&1"
