"""Atomic writes: a file that exists under its final name is complete."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
)

TRACES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("epoch", pa.int32()),
        ("step", pa.int64()),
        ("layer", pa.int16()),
        ("param", pa.string()),
        ("grad_norm", pa.float64()),
        ("source", pa.string()),
    ]
    # probe rows of hidden layers only (NaN elsewhere): see gradsweep.diagnostics.COLUMNS
    + [(name, pa.float64()) for name in DIAGNOSTICS]
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
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(df: pd.DataFrame, path: str | Path, schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
