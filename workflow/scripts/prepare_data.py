"""Snakemake adapter: verify the raw files, then split, scale and write the dataset .npz.

Every input is checked against gradsweep.data.DATASETS (local copies such as Debian's or a
configured `source`, and downloads alike; IDX files may also match by decompressed content).
A bad file ends the job with one message naming it, in its log and on the terminal.
"""

from pathlib import Path

from gradsweep.data import DataError, prepare, verify_raw_files
from gradsweep.io import job_log

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

with job_log(smk.log[0] if smk.log else None, DataError):
    files = [Path(p) for p in smk.input]
    verify_raw_files(smk.params.dataset, files)
    prepare(smk.params.dataset, files, Path(smk.output[0]))
