"""A run's files: their schemas, atomic writes (a file that exists under its final name is
complete), the one run.json reader, and job logs."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
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

# Trace and metric columns (issue 25): a float is float32 where every value is one that
# TensorFlow computed in float32 (a norm, a diagnostic, ``relative_update``: the float32
# quotient of two float32 norms), and float64 where the value is a float64 sum or mean (the
# probe rows' weight-decay split, the metrics' losses and accuracies, averaged over chunks in
# Python, and the wall clock). Integers are as narrow as every valid value allows (epoch ≤
# 32,767; step ≤ 2³¹ − 1). Files written before (float64, int32 epoch, int64 step) read and
# stack with these: ``gradsweep.aggregate`` casts every run's table to this schema.
TRACES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("epoch", pa.int16()),
        ("step", pa.int32()),
        ("layer", pa.int16()),
        ("param", pa.string()),
        ("grad_norm", pa.float32()),
        # ‖Δθ‖ of the step (step rows) or θ_e − θ_(e−1) over the epoch (probe rows), and
        # that ÷ ‖θ‖ after it: how fast each parameter tensor moves, under any optimizer
        ("update_norm", pa.float32()),
        ("relative_update", pa.float32()),
        # that Δθ split in two (issue 24): ‖its weight-decay part‖ and ‖the rest‖, the part of
        # ∂C0/∂θ (gradsweep.optim: how each rule splits; over the epoch, the steps' parts summed)
        # float64: the probe rows' parts are summed in float64 (the step rows' are float32)
        ("decay_norm", pa.float64()),
        ("grad_step_norm", pa.float64()),
        ("source", pa.string()),
    ]
    # probe rows of hidden layers only (NaN elsewhere): see gradsweep.diagnostics.COLUMNS
    + [(name, pa.float32()) for name in DIAGNOSTICS]
    # and the RMS over the probe images of ‖∂C_x/∂z^l‖ (issue 23; Trainer.probe_norms)
    + [("example_grad_rms", pa.float32())]
)
METRICS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("epoch", pa.int16()), ("step", pa.int32())]
    + [
        (f"{split}_{what}", pa.float64())
        for split in ("train", "val", "test")
        for what in ("loss", "acc")
    ]
    + [("wall_s", pa.float64())]
)


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How every table of the package is written: zstd at level 6; the floats
    byte-stream-split (their exponent bytes, alike from row to row, compress apart from the
    mantissa bytes), no dictionary for them; a dictionary for the strings (a few distinct
    values each). Level 6 rather than Arrow's 1: 3 % fewer bytes on a real sweep's traces for
    0.1 s more per million rows written, reading as fast (benchmarks/README.md)."""
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    strings = [f.name for f in schema if pa.types.is_string(f.type)]
    return {
        "compression": "zstd",
        "compression_level": 6,
        "use_byte_stream_split": floats,
        "use_dictionary": strings,
    }


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


def as_table(df: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """``df`` as an Arrow table of ``schema`` (NaN as null, floats and integers cast to its
    types; an integer out of its type's range raises)."""
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)


def write_parquet(df: pd.DataFrame, path: str | Path, schema: pa.Schema | None = None) -> None:
    table = as_table(df, schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema))


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


# Where a sweep keeps its runs' traces (issue 25): one file per run, in a hive-partitioned
# folder, ``results/<sweep>/traces/experiment=<experiment>/<run>.parquet``: the run cache's
# file, hard-linked (the only copy of a trace); the folder reads as one table with an
# ``experiment`` column (docs/outputs.md shows the one call in pandas, pyarrow, DuckDB, polars).
TRACES_DIR = "traces"


def trace_path(out: str | Path, experiment: str, run: str) -> Path:
    """A run's traces in the sweep folder ``out``."""
    return Path(out) / TRACES_DIR / f"experiment={experiment}" / f"{run}.parquet"


def trace_run_id(path: str | Path) -> str:
    """The run_id ``<experiment>/<run>`` of a :func:`trace_path` (a per-run file elsewhere,
    ``.../<experiment>/<run>/traces.parquet``, as the run cache and tests lay them out)."""
    path = Path(path)
    if path.parent.name.startswith("experiment="):
        return f"{path.parent.name.removeprefix('experiment=')}/{path.stem}"
    return f"{path.parent.parent.name}/{path.parent.name}"


# the trace columns of strings: a handful of distinct values in millions of rows
STRING_COLUMNS = tuple(f.name for f in TRACES_SCHEMA if pa.types.is_string(f.type))


def read_run_traces(
    path: str | Path,
    columns: Sequence[str] | None = None,
    where: ds.Expression | None = None,
    error: type[Exception] = RunFileError,
    dictionary: bool = False,
) -> pa.Table:
    """One run's trace rows matching ``where`` (pyarrow expression; None: all), only
    ``columns`` (None: all of TRACES_SCHEMA), typed as TRACES_SCHEMA (:func:`conform_traces`):
    scanned one batch at a time, so memory holds the rows kept and one batch, not the file;
    ``error`` (naming the file) when it cannot be read.

    One batch at a time, not Arrow's default read-ahead of 16 batches: the probe rows of a
    60-epoch Fashion-MNIST run (3 M rows) then peak at ~380 MB instead of ~710 MB, and read
    in half the time on 2 cores (benchmarks/README.md).

    ``dictionary``: the string columns (:data:`STRING_COLUMNS`) as dictionaries, decoded as
    such and never as a string per row (a figure's reader: 1.5 M step rows of one run then take
    35 MB as Arrow instead of 125 MB, and pandas reads them as categoricals)."""
    names = list(columns or TRACES_SCHEMA.names)
    try:
        read = ds.ParquetReadOptions(dictionary_columns=STRING_COLUMNS if dictionary else ())
        dataset = ds.dataset(str(path), format=ds.ParquetFileFormat(read_options=read))
        present = [c for c in names if c in dataset.schema.names]
        table = dataset.to_table(
            columns=present, filter=where, batch_readahead=1, fragment_readahead=1
        )
    except (OSError, pa.ArrowException) as err:
        raise error(f"{path}: cannot be read as Parquet ({err}); rerun its job") from err
    return conform_traces(table, names, path, error, dictionary)


def conform_traces(
    table: pa.Table,
    columns: Sequence[str] | None = None,
    path: str | Path = "",
    error: type[Exception] = RunFileError,
    dictionary: bool = False,
) -> pa.Table:
    """Trace rows as TRACES_SCHEMA's ``columns`` (None: all): a file written before a column
    existed reads it as nulls, older types (float64, int64 step) are cast; ``dictionary``:
    the string columns as dictionaries of strings."""
    names = list(columns or TRACES_SCHEMA.names)
    fields = [TRACES_SCHEMA.field(c) for c in names]
    if dictionary:
        as_dictionary = pa.dictionary(pa.int32(), pa.string())
        fields = [f.with_type(as_dictionary) if f.name in STRING_COLUMNS else f for f in fields]
    schema = pa.schema(fields)
    for name in [c for c in names if c not in table.column_names]:
        table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    try:
        return table.select(names).cast(schema)
    except (pa.ArrowException, ValueError) as err:
        raise error(f"{path}: columns of the wrong type ({err}); rerun its job") from err


def is_in(column: str, values: Sequence[Any]) -> ds.Expression:
    """``column`` ∈ ``values``, typed as TRACES_SCHEMA's column (for :func:`read_run_traces`)."""
    return ds.field(column).isin(pa.array(list(values), TRACES_SCHEMA.field(column).type))
