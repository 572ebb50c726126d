"""Snakemake adapter: fetch one raw file and verify its sha256 (gradsweep.data.download)."""

import logging
from pathlib import Path

from gradsweep.data import download

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(
    filename=smk.log[0] if smk.log else None,
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)
download(smk.params.url, Path(smk.output[0]), smk.params.sha256)
