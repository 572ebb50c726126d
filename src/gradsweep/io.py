"""A run's files: their schemas, atomic writes (a file that exists under its final name is
complete), the one run.json reader, and job logs."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DIAGNOSTICS = (
    "act_deriv",
    "weight_norm",
    "chain_factor",
    "saturated_frac",
    "dead_frac",
    "same_sign_frac",
    "z_p15",
    "z_p50",
    "z_p85",
)

TRACES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("epoch", pa.int32()),
        ("step", pa.int64()),
        ("layer", pa.int16()),
        ("param", pa.string()),
        ("grad_norm", pa.float64()),
        # ‖Δθ‖ of the step (step rows) or θ_e − θ_(e−1) over the epoch (probe rows), and
        # that ÷ ‖θ‖ after it: how fast each parameter tensor moves, under any optimizer
        ("update_norm", pa.float64()),
        ("relative_update", pa.float64()),
        # that Δθ split in two (issue 24): ‖its weight-decay part‖ and ‖the rest‖, the part of
        # ∂C0/∂θ (gradsweep.optim: how each rule splits; over the epoch, the steps' parts summed)
        ("decay_norm", pa.float64()),
        ("grad_step_norm", pa.float64()),
        ("source", pa.string()),
    ]
    # probe rows of hidden layers only (NaN elsewhere): see gradsweep.diagnostics.COLUMNS
    + [(name, pa.float64()) for name in DIAGNOSTICS]
    # and the RMS over the probe images of ‖∂C_x/∂z^l‖ (issue 23; Trainer.probe_norms)
    + [("example_grad_rms", pa.float64())]
)
METRICS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("epoch", pa.int32()), ("step", pa.int64())]
    + [
        (f"{split}_{what}", pa.float64())
        for split in ("train", "val", "test")
        for what in ("loss", "acc")
    ]
    + [("wall_s", pa.float64())]
)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success.

    The temporary file exists (empty) when the block starts, with the permissions the umask
    gives (not mkstemp's 0600: results are shared); it is removed if the block fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def job_log(path: str | None, *expected: type[Exception]) -> Iterator[None]:
    """The body of a Snakemake job script: logging and ``sys.stderr`` (progress bars) go to
    the job's log file ``path`` (None: stay on stderr).

    An ``expected`` error (e.g. ``DataError``, whose message says what to do) ends the job with
    that one message in the log and exit status 1, without a traceback; Snakemake then prints
    the log on the terminal (``show-failed-logs`` in workflow/profiles/default, which every run
    loads), so the message appears there once. Any other error is logged with its traceback
    and raised.
    """
    terminal = sys.stderr
    with open(path, "a") if path else nullcontext(terminal) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        sys.stderr = stream
        try:
            yield
        except expected as err:
            logging.getLogger("gradsweep").error("%s", err)
            raise SystemExit(1) from None
        except Exception:
            logging.getLogger("gradsweep").exception("job failed")
            raise
        finally:
            sys.stderr = terminal
            root.removeHandler(handler)


def write_parquet(df: pd.DataFrame, path: str | Path, schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# What every run.json holds (gradsweep.run writes it last, so a run with one is complete).
RUN_INFO_KEYS = ("run_id", "experiment", "run", "config", "status", "wall_s")


class RunFileError(RuntimeError):
    """A run's file is missing or unreadable: the job names it instead of dropping the run."""


def read_run_info(path: str | Path, error: type[Exception] = RunFileError) -> dict[str, Any]:
    """A run's run.json as a dict; ``error`` (naming the file and saying what to do) when it
    cannot be read or lacks a key of :data:`RUN_INFO_KEYS`."""
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise error(f"{path}: cannot be read as JSON ({err}); rerun its job") from err
    keys = RUN_INFO_KEYS
    missing = [k for k in keys if k not in info] if isinstance(info, dict) else list(keys)
    if missing or not isinstance(info["config"], dict):
        raise error(f"{path}: missing keys {missing or ['config']}; rerun its job")
    return info


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
