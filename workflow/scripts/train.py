"""Snakemake adapter: train one run (see gradsweep.run.train_run)."""

import os
import sys
from pathlib import Path

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

with open(smk.log[0], "w", buffering=1) as log:
    os.dup2(log.fileno(), 1)  # TensorFlow's C++ messages go to the job's log too
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    from gradsweep.run import train_run

    train_run(
        dict(smk.params.run),
        data=Path(smk.input.data),
        out_dir=Path(smk.output.info).parent,
        threads=smk.threads,
        checkpoint_dir=Path(smk.params.checkpoint_dir),
    )
