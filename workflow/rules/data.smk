# pooch retries each download itself (gradsweep.data.fetch), and a failure ends in one
# message (file, URL, cause, fix) in the job log and on the terminal. `retries: 0` keeps a
# profile's `retries:` (the SLURM one's) from repeating that failure.
rule download_raw:
    output:
        "resources/raw/{dataset}/{filename}",
    log:
        "logs/download/{dataset}/{filename}.log",
    benchmark:
        f"{OUT}/benchmarks/download_raw/{{dataset}}/{{filename}}.tsv"
    retries: 0
    conda:
        "../envs/gradsweep.yaml"
    params:
        url=lambda wildcards: download_target(wildcards)["url"],
        sha256=lambda wildcards: download_target(wildcards)["sha256"],
    script:
        "../scripts/download.py"


rule prepare_data:
    input:
        dataset_raw_files,
    output:
        "resources/data/{dataset}.npz",
    log:
        "logs/prepare_data/{dataset}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data/{{dataset}}.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        dataset=lambda wildcards: wildcards.dataset,
    script:
        "../scripts/prepare_data.py"
