"""How traces and metrics are stored (issue 25): float32 where TensorFlow computed the value in
float32, zstd with byte-stream-split floats, written in row groups as the epochs finish; and
run files written before (float64), which must still read and stack with new ones.

``tests/data/float64_run`` is a real run written the old way: the code of commit 71c499d (the
parent of this storage) trained :data:`CONFIG` and wrote its files there. The same config
trained now gives the same numbers, bit for bit (the trainer is deterministic), stored in the
new types.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from gradsweep import data
from gradsweep.aggregate import aggregate
from gradsweep.batches import publish
from gradsweep.config import expand_runs
from gradsweep.io import METRICS_SCHEMA, TRACES_SCHEMA, trace_path, write_parquet
from gradsweep.run import _TraceFile, norms_frame

OLD = Path(__file__).parent / "data/float64_run"
CONFIG = {
    "training": {"epochs": 2, "batch_size": 10, "probe_size": 100, "train_subset": 200},
    "experiments": {
        "old": {
            "dataset": "digits",
            "grid": {"depth": [2], "width": [8], "activation": ["sigmoid"],
                     "init": ["scaled_normal"], "seed": [0]},
        }
    },
}  # fmt: skip
TRAIN = r"""
import json, sys
from pathlib import Path
from gradsweep.run import train_run
cfg, root = json.loads(sys.argv[1]), Path(sys.argv[2])
train_run(cfg, data=root / "digits.npz", out_dir=root / "new", log=lambda line: None)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """CONFIG trained now, in a fresh process (its own TensorFlow), into ``<root>/new``."""
    root = tmp_path_factory.mktemp("storage")
    data.prepare("digits", [], root / "digits.npz")
    (cfg,) = expand_runs(CONFIG)
    assert cfg == json.loads((OLD / "run.json").read_text())["config"]  # the fixture's run
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, json.dumps(cfg), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "new"


def bits(values: pd.Series) -> np.ndarray:
    """The float32 values' bit patterns (NaN payloads included)."""
    return values.to_numpy(dtype=np.float32, na_value=np.nan).view(np.uint32)


def test_float32_traces_are_the_float64_ones_cast_bit_for_bit(trained):
    """The old file's float32-typed columns hold float32 numbers (TensorFlow's): cast, nothing
    is lost, bit for bit. The same config trained now stores those numbers as float32, equal
    to the old ones up to how XLA:CPU compiled the step for the machine's CPU: bit for bit
    where the fixture was written (AVX-512 and AMX, benchmarks/README.md), up to 12 float32
    ulps apart on an AMD EPYC with AVX2 (64 allowed), whose fused sums round differently and
    so train along a path apart by as little."""
    old = pd.read_parquet(OLD / "traces.parquet")
    new = pd.read_parquet(trained / "traces.parquet")
    assert list(new.columns) == TRACES_SCHEMA.names and len(new) == len(old) > 200
    assert (old["grad_norm"] > 0).all() and (old["decay_norm"] > 0).any()  # real numbers
    keys = ["run_id", "epoch", "step", "layer", "param", "source"]
    assert (new[keys] == old[keys]).all().all()
    # plain SGD's step rows no longer store the gradient's part of Δθ: it is η ‖∂C0/∂θ‖, as
    # the old file's values (TensorFlow's √(η² ‖∂C0/∂θ‖²) in float32) show
    steps = (old["source"] == "step").to_numpy()
    assert new.loc[steps, "grad_step_norm"].isna().all()
    assert new.loc[~steps, "grad_step_norm"].notna().sum() > 0
    eta = json.loads((OLD / "run.json").read_text())["config"]["learning_rate"]
    np.testing.assert_allclose(
        old.loc[steps, "grad_step_norm"], eta * old.loc[steps, "grad_norm"], rtol=3e-7
    )
    for field in (f for f in TRACES_SCHEMA if f.name in old):  # columns added since: new only
        a, b = old[field.name], new[field.name]
        if field.type == pa.float32():
            assert b.dtype == np.float32
            if field.name != "relative_update":  # float32 numbers: nothing lost at all
                np.testing.assert_array_equal(a.astype(np.float32).astype(np.float64), a)
            np.testing.assert_array_equal(b.isna(), a.isna(), field.name)
            ulps = np.abs(bits(b).astype(np.int64) - bits(a.astype(np.float32)).astype(np.int64))
            assert ulps[a.notna().to_numpy()].max() <= 64, field.name
        elif pa.types.is_floating(field.type):  # float64 sums of float32 numbers
            a, b = (a, b) if field.name != "grad_step_norm" else (a[~steps], b[~steps])
            np.testing.assert_array_equal(b.isna(), a.isna(), field.name)
            np.testing.assert_allclose(b, a, rtol=2e-6, err_msg=field.name)
    # relative_update was the float64 quotient of two float32 norms, now the float32 one:
    # that quotient rounded (test_relative_update_is_the_float64_quotient_rounded)
    old_metrics = pd.read_parquet(OLD / "metrics.parquet").drop(columns="wall_s")
    new_metrics = pd.read_parquet(trained / "metrics.parquet").drop(columns="wall_s")
    pd.testing.assert_frame_equal(new_metrics, old_metrics, check_dtype=False, rtol=1e-6)
    assert new_metrics["epoch"].dtype == np.int16 and new_metrics["step"].dtype == np.int32


def test_a_float64_run_stacks_with_a_new_one_and_publishes_renamed(trained, tmp_path):
    """An entry of the run cache written before issue 25 is not retrained: aggregation reads
    it with a new run into one table of the new types, and publishing it under another name
    rewrites it in them."""
    new = tmp_path / "new"
    shutil.copytree(trained, new)
    info = json.loads((new / "run.json").read_text())
    info.update(experiment="new", run_id=f"new/{info['run']}")
    (new / "run.json").write_text(json.dumps(info))
    traces = pd.read_parquet(new / "traces.parquet").assign(run_id=info["run_id"])
    write_parquet(traces, new / "traces.parquet", TRACES_SCHEMA)  # as the trainer writes it
    metrics = pd.read_parquet(new / "metrics.parquet").assign(run_id=info["run_id"])
    metrics.to_parquet(new / "metrics.parquet")
    out = tmp_path / "out"
    folders = [OLD, new]
    files = {k: [str(f / f"{k}.parquet") for f in folders] for k in ("traces", "metrics")}
    runs = aggregate(
        [str(f / "run.json") for f in folders],
        files["traces"],
        files["metrics"],
        out / "runs.parquet",
        out / "metrics.parquet",
    )
    assert list(runs["experiment"]) == ["old", "new"]
    # same training (up to the few float32 ulps of another CPU's XLA code, test above)
    assert runs["grad_ratio_init"].iloc[0] == pytest.approx(runs["grad_ratio_init"].iloc[1], 1e-6)
    # published into a sweep's traces folder, the old file is rewritten in the new types (not
    # linked: the folder reads as one table), the new one linked; they read as one table
    for folder in folders:
        run_id = json.loads((folder / "run.json").read_text())["run_id"]
        target = trace_path(out, *run_id.split("/"))
        publish(folder, run_id, out / "runs" / run_id, target)
        linked = target.stat().st_ino == (folder / "traces.parquet").stat().st_ino
        assert linked == (folder == new), folder
    stacked = ds.dataset(out / "traces", partitioning="hive").to_table()
    assert stacked.schema.remove_metadata() == TRACES_SCHEMA.append(
        pa.field("experiment", pa.string())
    )
    halves = stacked.to_pandas()
    halves = pd.concat([halves[halves["experiment"] == e] for e in ("old", "new")])
    halves = halves.drop(columns=["experiment", "run_id"])
    first, second = halves.iloc[: len(halves) // 2], halves.iloc[len(halves) // 2 :]
    # a column added after the old run was written (example_grad_rms) reads as null there
    later = [c for c in halves.columns if c not in pq.read_schema(OLD / "traces.parquet").names]
    assert first[later].isna().all().all() and second[later].notna().any().all()
    first, second = first.drop(columns=later), second.drop(columns=later)
    # plain SGD's step rows: the gradient's part stored in the old run only (η grad_norm)
    steps = (first["source"] == "step").to_numpy()
    assert second.loc[steps, "grad_step_norm"].isna().all()
    second.loc[steps, "grad_step_norm"] = first.loc[steps, "grad_step_norm"].to_numpy()
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second.reset_index(drop=True))
    stacked_metrics = pq.read_table(out / "metrics.parquet")
    assert stacked_metrics.schema.field("epoch").type == METRICS_SCHEMA.field("epoch").type
    publish(OLD, "old/renamed", tmp_path / "renamed")
    renamed = pq.read_table(tmp_path / "renamed/traces.parquet")
    assert renamed.schema.remove_metadata() == TRACES_SCHEMA
    assert set(renamed["run_id"].to_pylist()) == {"old/renamed"}


def test_files_are_zstd_with_split_floats_and_dictionary_strings(trained):
    meta = pq.ParquetFile(trained / "traces.parquet").metadata
    for i in range(meta.num_columns):
        column = meta.row_group(0).column(i)
        field = TRACES_SCHEMA.field(column.path_in_schema)
        assert column.compression == "ZSTD"
        if pa.types.is_floating(field.type):
            assert "BYTE_STREAM_SPLIT" in column.encodings, field.name
        if pa.types.is_string(field.type):
            assert "RLE_DICTIONARY" in column.encodings, field.name
    old_size = (OLD / "traces.parquet").stat().st_size
    assert (trained / "traces.parquet").stat().st_size < 0.6 * old_size


def test_relative_update_is_the_float64_quotient_rounded():
    rng = np.random.default_rng(0)
    update = rng.lognormal(-6, 3, (50, 4)).astype(np.float32)
    param = rng.lognormal(0, 3, (50, 4)).astype(np.float32)
    param[0, 0], update[1, 1], param[1, 1] = 0, 0, 0  # inf and NaN, as NumPy divides
    names = [(1, "kernel"), (1, "bias"), (2, "kernel"), (2, "bias")]
    frame = norms_frame("e/r", names, update, 1, np.arange(50), "step", update, param)
    with np.errstate(divide="ignore", invalid="ignore"):
        oracle = (update.astype(np.float64) / param.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(bits(frame["relative_update"]), oracle.ravel().view(np.uint32))
    assert frame["grad_norm"].dtype == np.float32


def test_trace_file_writes_row_groups_as_epochs_come_and_nothing_on_failure(tmp_path):
    """Epochs of 10 rows with row groups of at least 25 rows: groups of 30, 30 and the last
    10; the file equals the epochs stacked. A failure leaves no file, not even a temporary."""
    epochs = [
        norms_frame("e/r", [(1, "kernel"), (1, "bias")], np.full((5, 2), e + 0.5), e,
                    np.arange(5) + 5 * e, "step")
        for e in range(7)
    ]  # fmt: skip
    path = tmp_path / "traces.parquet"
    with _TraceFile.open(path, row_group_rows=25) as traces:
        for frame in epochs:
            traces.add(frame)
        assert not path.exists()  # a temporary file until the run ends
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [30, 30, 10]
    expected = pd.concat(epochs, ignore_index=True).reindex(columns=TRACES_SCHEMA.names)
    got = pd.read_parquet(path)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    broken = tmp_path / "broken.parquet"
    with pytest.raises(RuntimeError), _TraceFile.open(broken) as traces:
        traces.add(epochs[0])
        raise RuntimeError("the run failed")
    assert list(tmp_path.iterdir()) == [path]
