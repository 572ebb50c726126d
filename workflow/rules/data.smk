rule download_raw:
    output:
        "resources/raw/{dataset}/{filename}",
    params:
        url=lambda wildcards: download_target(wildcards)["url"],
        sha256=lambda wildcards: download_target(wildcards)["sha256"],
    log:
        "logs/download/{dataset}/{filename}.log",
    retries: 2
    script:
        "../scripts/download.py"


rule prepare_data:
    input:
        dataset_raw_files,
    output:
        "resources/data/{dataset}.npz",
    params:
        dataset=lambda wildcards: wildcards.dataset,
    log:
        "logs/prepare_data/{dataset}.log",
    script:
        "../scripts/prepare_data.py"
