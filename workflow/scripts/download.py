"""Snakemake adapter: fetch one raw file and verify its sha256 (gradsweep.data.download).

A failed download ends the job with one message (file, URL, cause, fix) in its log and on
the terminal, without a traceback.
"""

from pathlib import Path

from gradsweep.data import DataError, download
from gradsweep.io import job_log

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

with job_log(smk.log[0] if smk.log else None, DataError):
    download(smk.params.url, Path(smk.output[0]), smk.params.sha256, dataset=smk.wildcards.dataset)
