"""The one builder of synthetic runs and sweeps for the tests (and benchmarks/bench_figures.py).

A :class:`Run` names a net (the settings its run.json holds) and how its gradients behave.
:func:`make_run` turns it into a run.json dict and per-run traces and metrics frames with the
columns of ``gradsweep.io.TRACES_SCHEMA`` / ``METRICS_SCHEMA``; :func:`write_run` writes them
with the package's own writers (``io.write_json``, ``io.write_parquet`` with the schemas);
:func:`aggregate_runs` stacks them with the real ``gradsweep.aggregate.aggregate``, so every
runs/traces/metrics table a test reads has the columns, types and summaries of the workflow's
(docs/outputs.md). :func:`sweep` does all three; :func:`grid_runs` makes the runs of a grid
with the remedy axes of issue 15. No TensorFlow.

The gradient model. The probe bias-gradient norm of hidden layer l of a depth-d net at epoch e
is ``BASE · k_e ** -(d - l) · decay ** e · (1 + 0.05 · seed) · noise`` (the output layer
l = d + 1 as l = d), so the last ÷ first hidden layer ratio is ``k_e ** (d - 1)``; ``k_e`` is
``shrink`` before epoch ``escape`` and ``shrink_end`` from it on. Kernels have 3 × the bias
norm; the RMS per-image error norm (``example_grad_rms``) of a hidden layer is 8 × its bias
norm, so ``grad_slope_init`` is −ln k (without noise). A step of epoch e has the probe norm
of epoch e - 1 times lognormal(0, step_noise) noise. Relative updates shrink like the
gradients (evened out with ``even_updates``, Adam). A run that diverges at epoch E ends
there: its probe norms are inf (layer 1) and NaN, its accuracies NaN.

This module is the one place that imports the config hash helpers (``config_id``,
``run_settings``, ``widths_string``); tests import them from here.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gradsweep.aggregate import RUNS_SCHEMA, aggregate
from gradsweep.batches import cache_entry
from gradsweep.config import OPTIONAL_DEFAULTS, TRAINER_VERSION, TRAINING_DEFAULTS, run_name
from gradsweep.io import (
    DIAGNOSTICS,
    METRICS_SCHEMA,
    TRACES_SCHEMA,
    trace_path,
    trace_run_id,
    write_json,
    write_parquet,
)
from gradsweep.settings import config_id, run_settings, widths_string

__all__ = [
    "BASE", "DIAGNOSTICS", "RUNS_SCHEMA", "Run", "RunData", "RunFiles", "Sweep",
    "aggregate_runs", "cached_run", "check_png", "config_id", "edge_of_chaos_sweep", "grid_runs",
    "make_run", "run_settings", "shrink", "sweep", "synthetic_aggregate", "widths_string",
    "write_run",
]  # fmt: skip

BASE = 0.3  # the output-side hidden layer's probe bias-gradient norm at epoch 0, seed 0
# per-layer factor by which the bias gradient shrinks towards the input: activation x init
SHRINK = {"sigmoid": 4.0, "softsign": 2.0, "tanh": 1.5, "relu": 1.0, "elu": 1.1}
INIT_GAIN = {"scaled_normal": 1.25, "normal": 0.5}
PARAMS = (("bias", 1.0), ("kernel", 3.0))  # trace rows per layer, and their norm's scale
EXAMPLE_SCALE = 8.0  # a hidden layer's example_grad_rms ÷ its probe bias-gradient norm


def shrink(activation: str, init: str) -> float:
    """The default ``Run.shrink``: sigmoid 4 (5 with scaled_normal), ReLU + He 1, ReLU with
    ``normal`` 0.5 (exploding)."""
    return SHRINK[activation] * INIT_GAIN.get(init, 1.0)


@dataclass(frozen=True)
class Run:
    """One synthetic run: what its run.json says, and how its numbers behave."""

    experiment: str
    widths: tuple[int, ...]
    activation: str = "sigmoid"
    init: str = "scaled_normal"
    seed: int = 0
    dataset: str = "digits"
    epochs: int = 6
    steps_per_epoch: int = 20
    trace_every: int = 1
    settings: Mapping[str, Any] = field(default_factory=dict)  # varied config keys: in the name
    shrink: float | None = None  # None: shrink(activation, init)
    shrink_end: float | None = None  # k_e from ``escape`` on (None: 1 + 0.1 (k - 1))
    escape: int | None = None  # None: ``shrink`` throughout
    decay: float = 1.0  # every norm times decay ** epoch
    noise: float = 0.0  # sigma of the probe norms' lognormal noise
    step_noise: float = 0.5
    steps: bool = True  # False: traced without step rows
    diverge_at: int | None = None
    acc: float = 0.9  # best (= last) validation accuracy; 0.1 = chance: never learned
    rate: float = 0.3  # how fast the accuracy curve rises (1.0: batch norm's faster start)
    even_updates: bool = False  # Adam: relative updates equal in every layer
    z_drift: float = 0.6  # how far the last epoch's percentiles of z moved (0: batch norm)

    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def k(self) -> float:
        return shrink(self.activation, self.init) if self.shrink is None else self.shrink

    @property
    def name(self) -> str:
        return run_name(self.config(), self.settings)

    @property
    def run_id(self) -> str:
        return f"{self.experiment}/{self.name}"

    def config(self) -> dict[str, Any]:
        """run.json's ``config``, as gradsweep.config.expand writes it."""
        cfg = {**TRAINING_DEFAULTS, "epochs": self.epochs, "trace_every": self.trace_every,
               "experiment": self.experiment, "dataset": self.dataset,
               "widths": list(self.widths), "activation": self.activation, "init": self.init,
               "seed": self.seed, "trainer_version": TRAINER_VERSION, **self.settings}  # fmt: skip
        defaults = {k: v for k, v in OPTIONAL_DEFAULTS.items() if k in cfg and cfg[k] == v}
        return {k: v for k, v in cfg.items() if k not in defaults}  # as config.expand leaves them

    def k_per_epoch(self, last: int) -> np.ndarray:
        end = 1 + 0.1 * (self.k - 1) if self.shrink_end is None else self.shrink_end
        e = np.arange(last + 1)
        return np.where((self.escape is None) | (e < (self.escape or 0)), self.k, end)


@dataclass
class RunData:
    info: dict[str, Any]
    traces: pd.DataFrame  # TRACES_SCHEMA's columns
    metrics: pd.DataFrame  # METRICS_SCHEMA's columns


@dataclass(frozen=True)
class RunFiles:
    info: Path
    traces: Path
    metrics: Path


@dataclass
class Sweep:
    """gradsweep.aggregate's three tables (read back from Parquet) and the files behind them."""

    runs: pd.DataFrame
    traces: pd.DataFrame
    metrics: pd.DataFrame
    paths: dict[str, Any]  # runs, metrics (files), traces (their folder, or the run files)
    files: list[RunFiles]


def _diagnostics(run: Run, last: int) -> dict[str, np.ndarray]:
    """Per (epoch, layer) diagnostics of the probe rows; NaN for the output layer."""
    e = np.arange(last + 1)[:, None].astype(float)
    layer = np.arange(1, run.depth + 2)[None, :].astype(float)
    deriv = 0.2 if run.activation == "sigmoid" else 0.5
    drift = run.z_drift * e / run.epochs * np.where(layer % 2, 1, -1)
    shape = np.broadcast_shapes(e.shape, layer.shape)
    diag = {
        "act_deriv": np.full(shape, deriv),
        "weight_norm": np.broadcast_to(5.0 + 0.1 * e, shape),
        "chain_factor": np.full(shape, deriv * 5),
        "saturated_frac": np.broadcast_to(0.1 * layer / run.depth, shape),
        "dead_frac": np.broadcast_to(0.05 * e if run.activation == "relu" else 0 * e, shape),
        "same_sign_frac": np.broadcast_to(np.maximum(0.0, 0.9 - 0.15 * e), shape),
        "z_p15": -1.0 + drift, "z_p50": drift + 0 * e, "z_p85": 1.0 + drift,
    }  # fmt: skip
    diag = {c: np.array(v, dtype=float) for c, v in diag.items()}
    for v in diag.values():
        v[:, -1] = np.nan  # the output layer
    if run.diverge_at is not None:  # what a probe of NaN weights reports: finite nonsense
        for c, v in diag.items():
            v[-1, :-1] = {"dead_frac": 0.95, "weight_norm": np.nan}.get(c, 0.0)
    assert set(diag) == set(DIAGNOSTICS)
    return diag


def _probe_rows(run: Run, g: np.ndarray, rel: np.ndarray) -> pd.DataFrame:
    last, n_layers = g.shape[0] - 1, g.shape[1]
    e, layer = (a.ravel() for a in np.meshgrid(np.arange(last + 1), np.arange(1, n_layers + 1),
                                               indexing="ij"))  # fmt: skip
    diag = {c: v.ravel() for c, v in _diagnostics(run, last).items()}
    per_image = np.where(layer <= run.depth, EXAMPLE_SCALE * g.ravel(), np.nan)  # hidden only
    rel = np.where(e == 0, np.nan, rel[e, layer - 1])
    parts = [
        pd.DataFrame(
            {
                "epoch": e,
                "step": e * run.steps_per_epoch,
                "layer": layer,
                "param": param,
                "grad_norm": g.ravel() * scale,
                "update_norm": 30 * rel * scale,
                "relative_update": 10 * rel,
                "source": "probe",
                **diag,
                "example_grad_rms": per_image,
            }
        )
        for param, scale in PARAMS
    ]
    return pd.concat(parts).sort_values(["epoch", "layer"], kind="stable")


def _step_rows(run: Run, g: np.ndarray, rel: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    last, n_layers = g.shape[0] - 1, g.shape[1]
    steps = np.arange(1, last * run.steps_per_epoch + 1, run.trace_every)
    s, layer = (a.ravel() for a in np.meshgrid(steps, np.arange(1, n_layers + 1), indexing="ij"))
    e = (s - 1) // run.steps_per_epoch + 1
    parts = []
    for param, scale in PARAMS:
        r = rel[e, layer - 1] * rng.lognormal(0, 0.3, len(s))
        parts.append(pd.DataFrame({
            "epoch": e, "step": s, "layer": layer, "param": param,
            "grad_norm": g[e - 1, layer - 1] * scale * rng.lognormal(0, run.step_noise, len(s)),
            "update_norm": 30 * r * scale, "relative_update": r, "source": "step",
        }))  # fmt: skip
    return pd.concat(parts).sort_values(["step", "layer"], kind="stable")


def make_run(run: Run, rng: np.random.Generator | None = None) -> RunData:
    """run.json, traces and metrics of one run (module docstring: the model)."""
    rng = rng or np.random.default_rng(run.seed)
    last = run.epochs if run.diverge_at is None else run.diverge_at
    k_e = run.k_per_epoch(last)[:, None]
    depth_from_top = (run.depth - np.minimum(np.arange(1, run.depth + 2), run.depth))[None, :]
    e = np.arange(last + 1)[:, None]
    g = BASE * k_e**-depth_from_top * run.decay**e * (1 + 0.05 * run.seed)
    g = g * rng.lognormal(0, run.noise, g.shape)
    rel = 1e-3 * (np.ones_like(g) if run.even_updates else k_e**-depth_from_top)
    if run.diverge_at is not None:
        g[-1, 0], g[-1, 1:] = np.inf, np.nan
    traces = _probe_rows(run, g, rel)
    if run.steps:
        traces = pd.concat([traces, _step_rows(run, g, rel, rng)])
    traces = traces.assign(run_id=run.run_id).reindex(columns=TRACES_SCHEMA.names)
    acc = _accuracy(run, last)
    metrics = pd.DataFrame({
        "run_id": run.run_id, "epoch": np.arange(last + 1), "step": e[:, 0] * run.steps_per_epoch,
        "train_loss": 1 - acc, "train_acc": acc, "val_loss": 1 - acc, "val_acc": acc,
        "test_loss": 1 - acc, "test_acc": acc - 0.005, "wall_s": e[:, 0] * 0.5,
    })  # fmt: skip
    diverged = {"epoch": last, "step": last * run.steps_per_epoch, "reason": "non-finite gradient"}
    info = {"run_id": run.run_id, "experiment": run.experiment, "run": run.name,
            "config": run.config(), "status": "ok" if run.diverge_at is None else "diverged",
            "diverged": None if run.diverge_at is None else diverged, "wall_s": 3.0,
            "device": "/device:CPU:0"}  # fmt: skip
    return RunData(info, traces.reset_index(drop=True), metrics)


def _accuracy(run: Run, last: int) -> np.ndarray:
    """From chance (0.1) at epoch 0 to ``run.acc`` at the last epoch; NaN where it diverged."""
    e = np.arange(last + 1)
    shape = (1 - np.exp(-run.rate * e)) / (1 - np.exp(-run.rate * run.epochs))
    acc = 0.1 + (run.acc - 0.1) * shape
    if run.diverge_at is not None:
        acc[-1] = np.nan
    return acc


def write_run(data: RunData, root: str | Path, sweep: str | Path | None = None) -> RunFiles:
    """The three files of a run under ``root/<run_id>/``, written as the trainer writes them;
    with ``sweep``, its traces where the workflow puts them instead, in the sweep folder's
    ``traces/experiment=<experiment>/<run>.parquet`` (gradsweep.io.trace_path)."""
    d = Path(root) / data.info["run_id"]
    traces = d / "traces.parquet"
    if sweep is not None:
        traces = trace_path(sweep, data.info["experiment"], data.info["run"])
    files = RunFiles(d / "run.json", traces, d / "metrics.parquet")
    write_json(data.info, files.info)
    write_parquet(data.traces, files.traces, TRACES_SCHEMA)
    write_parquet(data.metrics, files.metrics, METRICS_SCHEMA)
    return files


def cached_run(cfg: Mapping[str, Any], cache: str | Path, **behaviour: Any) -> Path:
    """An expanded run config's (gradsweep.config.expand_runs) files in the run cache
    ``cache``, as its train job leaves them: :func:`make_run`'s numbers for its net
    (``behaviour``: more :class:`Run` fields, e.g. ``acc=0.1``), under its name and config.
    Returns the cache entry, which gradsweep.batches.publish puts in place."""
    run = Run(cfg["experiment"], tuple(cfg["widths"]), cfg["activation"], cfg["init"],
              cfg["seed"], cfg["dataset"], cfg["epochs"], **behaviour)  # fmt: skip
    data = make_run(run)
    run_id = f"{cfg['experiment']}/{cfg['run']}"
    data.info.update(run_id=run_id, run=cfg["run"], config=dict(cfg))
    entry = cache_entry(cache, cfg)
    write_parquet(data.traces.assign(run_id=run_id), entry / "traces.parquet", TRACES_SCHEMA)
    write_parquet(data.metrics.assign(run_id=run_id), entry / "metrics.parquet", METRICS_SCHEMA)
    write_json(data.info, entry / "run.json")  # last, as the trainer writes it
    return entry


def aggregate_runs(files: Sequence[RunFiles], out: str | Path) -> Sweep:
    """gradsweep.aggregate.aggregate over the runs' files: ``out``/{runs,metrics}.parquet;
    ``paths["traces"]``: the run's trace files' folder (``out/traces`` for :func:`sweep`'s),
    and ``Sweep.traces`` every run's traces stacked in order, with their ``experiment``."""
    out = Path(out)
    paths = {name: out / f"{name}.parquet" for name in ("runs", "metrics")}
    aggregate([str(f.info) for f in files], [str(f.traces) for f in files],
              [str(f.metrics) for f in files], paths["runs"], paths["metrics"])  # fmt: skip
    tables = {name: pd.read_parquet(path) for name, path in paths.items()}
    stacked = []
    for f in files:
        table = pq.read_table(f.traces)
        experiment = trace_run_id(f.traces).split("/")[0]
        stacked.append(table.append_column("experiment", pa.array([experiment] * len(table))))
    traces = pa.concat_tables(stacked).to_pandas() if stacked else pd.DataFrame()
    folders = {f.traces.parent.parent for f in files}
    paths["traces"] = folders.pop() if len(folders) == 1 else [f.traces for f in files]
    return Sweep(tables["runs"], traces, tables["metrics"], paths, list(files))


def sweep(runs: Iterable[Run], out: str | Path | None = None, *, rng_seed: int = 0) -> Sweep:
    """Write every run's files and aggregate them into ``out`` (None: a temporary directory,
    removed once the tables are read back)."""
    rng = np.random.default_rng(rng_seed)
    if out is None:
        with tempfile.TemporaryDirectory() as tmp:
            return sweep(runs, tmp, rng_seed=rng_seed)
    files = [write_run(make_run(run, rng), Path(out) / "runs", out) for run in runs]
    return aggregate_runs(files, out)


# --------------------------------------------------------------------------- remedy grids


def grid_runs(
    *,
    depth: Sequence[int] = (1, 3, 6),
    width: Sequence[int] = (16, 64),
    activation: Sequence[str] = ("sigmoid", "tanh", "relu", "elu"),
    init: Sequence[str] = ("scaled_normal", "he_normal", "glorot_uniform"),
    seeds: Sequence[int] = (0, 1),
    steps_per_epoch: int = 20,
    experiment: str = "grid",
    rng_seed: int = 0,
    remedies: Mapping[str, Sequence[Any]] | None = None,
    epochs: int = 6,
    dataset: str = "digits",
) -> list[Run]:
    """A sweep's grid with the remedy axes of issue 15 (``remedies={"optimizer": ["sgd",
    "adam"], ...}``): batch norm shrinks the gradient ratio, learns faster and keeps the
    percentiles of z still; residual shortcuts halve it; Adam evens out the relative updates;
    deep sigmoid nets with SGD and no normalization never learn for every third seed. The
    others whose factor is above 1.5 become healthy at a random epoch after the first."""
    rng = np.random.default_rng(rng_seed)
    axes = dict(remedies or {})
    points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    out = []
    for d, w, act, ini, seed, remedy in itertools.product(depth, width, activation, init, seeds,
                                                          points):  # fmt: skip
        bn = remedy.get("normalization", "none") != "none"
        adam = remedy.get("optimizer") == "adam"
        k = shrink(act, ini)
        k = 1 + 0.3 * (k - 1) if bn else k
        k = 1 + 0.5 * (k - 1) if remedy.get("residual") else k
        stuck = act == "sigmoid" and d >= 6 and seed % 3 == 1 and not (bn or adam)
        # healthy from a random epoch after the first (epoch 1 shows the initial ratio)
        escape = int(rng.integers(min(2, epochs - 1), epochs)) if k > 1.5 and not stuck else None
        acc = 0.1 if stuck else 0.9 - 0.01 * d + rng.normal(0, 0.01) + 0.02 * bn
        out.append(Run(experiment, (w,) * d, act, ini, seed, dataset, epochs, steps_per_epoch,
                       settings=remedy, shrink=k, escape=escape, noise=0.1, acc=acc,
                       rate=1.0 if bn else 0.3, even_updates=adam,
                       z_drift=0.0 if bn else 0.6))  # fmt: skip
    return out


def synthetic_aggregate(out: str | Path, **grid: Any) -> dict[str, Path]:
    """runs/traces/metrics.parquet of :func:`grid_runs` (its keywords) in ``out``."""
    rng_seed = grid.get("rng_seed", 0)
    return sweep(grid_runs(**grid), out, rng_seed=rng_seed).paths


# --------------------------------------------------------------------------- edge of chaos


def edge_of_chaos_sweep(
    cells: Mapping[tuple[int, float], float | Sequence[float]],
    *,
    sigma_b2: float = 0.05,
    seeds: Sequence[int] = (0, 1),
    activation: str = "tanh",
    width: int = 16,
    slopes: Mapping[tuple[int, float], tuple[float, float]] | None = None,
    experiment: str = "edge_of_chaos",
) -> Sweep:
    """An edge_of_chaos sweep: per (depth, σ_w²) of ``cells`` one config whose seeds reach that
    best training accuracy (0.1: chance, never trained; a sequence: one per seed), with the
    settings ``weight_variance`` = σ_w² and ``bias_variance`` = ``sigma_b2``. ``slopes``
    (per cell (predicted, measured); None: the aggregation's own) replaces runs.parquet's
    ``grad_slope_predicted`` and ``grad_slope_init`` (seed s: measured + 0.01 s)."""
    cfgs = [(depth, w, seed, acc[i] if isinstance(acc, Sequence) else acc)
            for (depth, w), acc in cells.items() for i, seed in enumerate(seeds)]  # fmt: skip
    runs = [
        Run(experiment, (width,) * depth, activation, "scaled_normal", seed, epochs=3,
            settings={"weight_variance": w, "bias_variance": sigma_b2}, shrink=1.0, acc=acc)
        for depth, w, seed, acc in cfgs
    ]  # fmt: skip
    out = sweep(runs)
    keys = [(depth, w) for depth, w, _, _ in cfgs]
    table = out.runs.set_index("run_id").loc[[r.run_id for r in runs]].reset_index()
    if slopes is not None:
        table["grad_slope_predicted"] = [slopes[k][0] for k in keys]
        table["grad_slope_init"] = [
            slopes[k][1] + 0.01 * r.seed for k, r in zip(keys, runs, strict=True)
        ]
    out.runs = table
    return out


# --------------------------------------------------------------------------- figure checks


def check_png(path: Path, min_w: int = 600, min_h: int = 300) -> np.ndarray:
    """A PNG that exists, is at least ``min_w`` × ``min_h`` and is not a blank canvas."""
    assert path.exists() and path.stat().st_size > 10_000, "PNG missing or nearly empty"
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, (w, h)
    assert (img[..., :3] < 0.5).mean() > 0.002, "blank canvas"
    return img
