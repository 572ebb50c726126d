"""Snakemake adapter: verify the raw files, then split, scale and write the dataset .npz.

Every input is checked against gradsweep.data.DATASETS (local copies such as Debian's or a
configured `source`, and downloads alike; gzip files may also match by decompressed content).
"""

import logging
from pathlib import Path

from gradsweep.data import prepare, verify_raw_files

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0] if smk.log else None,
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)
files = [Path(p) for p in smk.input]
verify_raw_files(smk.params.dataset, files)
prepare(smk.params.dataset, files, Path(smk.output[0]))
