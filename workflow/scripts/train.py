"""Snakemake adapter: train one batch of runs in this process (see gradsweep.run.train_batch)."""

import os
import sys
from pathlib import Path

from gradsweep.batches import batch_members, members_digest
from gradsweep.device import prepare_environment

prepare_environment()  # before gradsweep.run imports TensorFlow, which reads it
smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

# "run i/n" lines to Snakemake's terminal (or a SLURM job's log) as well as to the job's log
terminal = os.fdopen(os.dup(1), "w", buffering=1)
batch = f"{smk.wildcards.experiment}/{smk.wildcards.batch}"


def progress(line: str) -> None:
    print(line, file=sys.stdout)  # the job's log
    if line.startswith("run "):
        print(f"train {batch}: {line}", file=terminal)


def train() -> None:
    # The members' configs, planned from the sweep's config as the Snakefile planned them;
    # the params hold only their digest (workflow/rules/train.smk), which they must match.
    runs = batch_members(smk.config, smk.wildcards.experiment, smk.wildcards.batch)
    if members_digest(runs) != smk.params.members:
        raise SystemExit(
            f"train {batch}: the runs planned from the config differ from those the workflow "
            "planned (params.members); rerun snakemake, which plans them again"
        )
    from gradsweep.run import train_batch  # TensorFlow's messages as it loads: to the log

    train_batch(
        runs,
        data=Path(smk.input.data),
        manifest=Path(smk.output.manifest),
        cache=Path(smk.params.cache),
        checkpoints=Path(smk.params.checkpoints),
        logs=Path(smk.params.logs),
        threads=smk.threads,
        progress=progress,
    )


with open(smk.log[0], "w", buffering=1) as log:
    os.dup2(log.fileno(), 1)  # TensorFlow's C++ messages go to the job's log too
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    try:
        train()
    finally:  # an error's traceback then goes to fd 2, the job's log, once `log` is closed
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
