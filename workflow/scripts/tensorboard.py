"""Snakemake adapter: TensorBoard event files (see gradsweep.tensorboard)."""

import logging

from gradsweep.tensorboard import write_experiment, write_sweep_config

smk = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)

logging.basicConfig(filename=smk.log[0], level=logging.INFO)
if smk.rule == "tensorboard_hparams_config":
    write_sweep_config(infos=list(smk.input.infos), out_dir=smk.output[0])
else:
    runs = write_experiment(
        infos=list(smk.input.infos),
        runs=smk.input.runs,
        traces=list(smk.input.traces),
        metrics=smk.input.metrics,
        out_dir=smk.output[0],
    )
    logging.info("wrote the events of %d runs to %s", len(runs), smk.output[0])
