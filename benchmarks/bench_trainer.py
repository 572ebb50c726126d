"""One epoch of the seed's batch-10 SGD: Keras ``fit`` against the gradsweep trainer (issue 3).

    python benchmarks/bench_trainer.py                  # Fashion-MNIST if installed, 1 thread
    python benchmarks/bench_trainer.py --threads 2 --reps 5 --no-wide
    python benchmarks/bench_trainer.py --remedies --no-wide   # + Adam and batch norm (issue 15)

50,000 training images × 784 features, 5,000 steps of batch 10, sigmoid layers and outputs,
sigmoid cross-entropy, SGD η = 0.5, for the net 784-100-100-100-100-10 and (reported only) the
wide net 784-2048-1024-512-256-10, in four variants:

  (a) Keras ``model.fit`` with its defaults (``jit_compile="auto"``, which Keras turns off on
      a CPU-only machine: a ``tf.function`` train step per batch), ``verbose=0``, no validation;
  (b) the same with ``steps_per_execution=500``;
  (c) ``gradsweep.train.Trainer`` with ``trace_every=0`` (no gradient norms);
  (d) the same tracing ‖∂C0/∂W‖ and ‖∂C0/∂b‖ of every layer on every step.

With ``--remedies``, also the 4 × 100 net with batch normalization before each sigmoid and
Adam (η = 0.001, Keras' defaults), no L2 on either side:

  (e) Keras ``fit`` of Dense (no bias) → ``BatchNormalization`` → sigmoid layers, ``Adam``;
  (f) the trainer with ``optimizer="adam"``, ``normalization="batch_norm"``, every step traced
      (‖∂C0/∂θ‖, ‖Δθ‖ and ‖θ‖ of every W, β and γ).

Keras is timed from ``on_epoch_begin`` to ``on_epoch_end`` (its per-``fit`` set-up, e.g. turning
the arrays into a dataset, is left out); the trainer from drawing the epoch's batches on the
host to the norms arriving as a NumPy array. The trainer runs the seed's L2 weight decay
(λ = 5), Keras none: both conservative for (c) and (d). Every variant runs one warm-up epoch,
then ``--reps`` epochs interleaved (the order rotates each round) in this one process, so a
shared machine's load hits all of them alike. Seconds are wall-clock; "cpu" is the process's
CPU time over the same span; ``gc.collect()`` runs before each timed epoch, outside it. The
last line is the issue's summary, from the medians.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gradsweep import data  # noqa: E402
from gradsweep.model import DenseNet  # noqa: E402
from gradsweep.train import SGD, Trainer, configure_threads, epoch_batches  # noqa: E402

N, FEATURES, CLASSES, BATCH, ETA, L2 = 50_000, 784, 10, 10, 0.5, 5.0
ADAM_ETA = 0.001
NETS = {"main": [784, 100, 100, 100, 100, 10], "wide": [784, 2048, 1024, 512, 256, 10]}
LABELS = {
    "a": "(a) keras fit",
    "b": "(b) keras fit, steps_per_execution=500",
    "c": "(c) gradsweep, trace_every=0",
    "d": "(d) gradsweep, every step, every W and b",
    "e": "(e) keras fit, adam + batch norm",
    "f": "(f) gradsweep, adam + batch norm, every step",
}


def load_data(kind: str) -> tuple[np.ndarray, np.ndarray, str]:
    """50,000 × 784 float32 images in [0, 1] and one-hot float32 labels."""
    files = sorted(data.DEBIAN_FASHION_DIR.glob("*-ubyte.gz"))
    if kind == "fashion" or (kind == "auto" and len(files) == 4):
        sp = data.spec("fashion_mnist")
        splits = data.split_and_scale(
            *data.load_raw("fashion_mnist", files), n_val=sp.n_val, max_value=sp.max_value
        )
        x, labels, name = splits.x_train, splits.y_train, f"Fashion-MNIST ({files[0].parent})"
    else:
        rng = np.random.default_rng(0)
        x, labels = rng.random((N, FEATURES), dtype=np.float32), rng.integers(0, CLASSES, N)
        name = "synthetic U[0, 1)"
    assert x.shape == (N, FEATURES), x.shape
    return x, np.eye(CLASSES, dtype=np.float32)[labels], name


Timer = Callable[[], tuple[float, float]]  # one epoch → (wall s, cpu s)


def keras_variant(
    sizes: list[int], x: np.ndarray, y: np.ndarray, spe: int = 1, remedies: bool = False
) -> Timer:
    if remedies:
        layers = []
        for width in sizes[1:-1]:
            layers += [
                keras.layers.Dense(width, use_bias=False),
                keras.layers.BatchNormalization(),
                keras.layers.Activation("sigmoid"),
            ]
        layers.append(keras.layers.Dense(sizes[-1], activation="sigmoid"))
    else:
        layers = [keras.layers.Dense(width, activation="sigmoid") for width in sizes[1:]]
    model = keras.Sequential([keras.Input((sizes[0],)), *layers])
    model.compile(
        optimizer=keras.optimizers.Adam(ADAM_ETA) if remedies else keras.optimizers.SGD(ETA),
        loss="binary_crossentropy",
        steps_per_execution=spe,
    )

    class EpochTime(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = (
                time.perf_counter() - self.start[0],
                time.process_time() - self.start[1],
            )

    timer = EpochTime()

    def epoch() -> tuple[float, float]:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True, callbacks=[timer])
        return timer.seconds

    epoch.jit_compile = model.jit_compile  # type: ignore[attr-defined]
    return epoch


def gradsweep_variant(sizes: list[int], x, y, trace_every: int, remedies: bool = False) -> Timer:
    norm = "batch_norm" if remedies else "none"
    net = DenseNet(sizes, "sigmoid", "scaled_normal", seed=0, normalization=norm)
    if remedies:
        sgd = SGD(ADAM_ETA, BATCH, trace_every=trace_every, optimizer="adam")
    else:
        sgd = SGD(ETA, BATCH, l2=L2, l2_n=N, trace_every=trace_every)
    trainer = Trainer(net, "sigmoid_cross_entropy", sgd)
    epochs = itertools.count(1)
    n_params = len(net.params)

    def epoch() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        batches = tf.constant(epoch_batches(N, BATCH, seed=0, epoch=next(epochs)))
        norms = trainer.train_epoch(x, y, batches)["grad"].numpy()
        seconds = time.perf_counter() - wall, time.process_time() - cpu
        assert norms.shape == ((N // BATCH, n_params) if trace_every else (0, n_params))
        assert np.isfinite(norms).all()
        return seconds

    return epoch


def matmul_peak(threads: int) -> float:
    """GMAC/s of one XLA-compiled 1024 × 1024 float32 matmul on this process's threads."""
    a = tf.constant(np.random.default_rng(0).random((1024, 1024), dtype=np.float32))
    square = tf.function(lambda m: m @ m, jit_compile=True)
    square(a).numpy()
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        square(a).numpy()
        best = min(best, time.perf_counter() - t0)
    return 1024**3 / best / 1e9


def run_net(
    name: str, sizes: list[int], x, y, reps: int, remedies: bool = False
) -> dict[str, dict[str, list[float]]]:
    x_tf, y_tf = tf.constant(x), tf.constant(y)
    timers = {
        "a": keras_variant(sizes, x, y),
        "b": keras_variant(sizes, x, y, spe=500),
        "c": gradsweep_variant(sizes, x_tf, y_tf, trace_every=0),
        "d": gradsweep_variant(sizes, x_tf, y_tf, trace_every=1),
    }
    if remedies:
        timers["e"] = keras_variant(sizes, x, y, remedies=True)
        timers["f"] = gradsweep_variant(sizes, x_tf, y_tf, trace_every=1, remedies=True)
    print(f"keras jit_compile (fit default): {timers['a'].jit_compile}", flush=True)
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in timers}
    for key, timer in timers.items():
        wall, _ = timer()
        print(f"  {name} warm-up {LABELS[key]}: {wall:.2f} s", flush=True)
    keys = list(timers)
    for rep in range(reps):
        for key in keys[rep % len(keys) :] + keys[: rep % len(keys)]:
            # Collect the garbage the previous variant left (Keras' fit leaves many objects),
            # so Python's collector does not run inside the next variant's timed epoch.
            gc.collect()
            wall, cpu = timers[key]()
            times[key]["wall"].append(wall)
            times[key]["cpu"].append(cpu)
        seconds = " ".join(f"{key} {times[key]['wall'][-1]:.3f}" for key in keys)
        print(f"  {name} round {rep + 1}/{reps}: {seconds} s; {loadavg()}", flush=True)
    return times


def table(title: str, times: dict[str, dict[str, list[float]]]) -> str:
    rows = [title, f"{'variant':44s} {'median':>8s} {'min':>8s} {'max':>8s} {'cpu med':>8s}"]
    for key, t in times.items():
        wall = t["wall"]
        rows.append(
            f"{LABELS[key]:44s} {statistics.median(wall):8.3f} {min(wall):8.3f} "
            f"{max(wall):8.3f} {statistics.median(t['cpu']):8.3f}"
        )
    return "\n".join(rows)


def work(sizes: list[int]) -> tuple[float, int]:
    """Multiply-adds per epoch (forward, ∂W and ∂a of every layer but the first) and params."""
    pairs = list(itertools.pairwise(sizes))
    macs_per_image = sum(a * b for a, b in pairs) * 3 - sizes[0] * sizes[1]
    return macs_per_image * N, sum(a * b + b for a, b in pairs)


def where_the_time_goes(sizes: list[int], times, peak: float) -> str:
    """Throughput against this process's matmul peak, and what tracing costs per step."""
    macs, params = work(sizes)
    med = {k: statistics.median(t["wall"]) for k, t in times.items()}
    cpu = {k: statistics.median(t["cpu"]) for k, t in times.items()}
    steps = N // BATCH
    megabytes = params * 4 / 1e6
    lines = [
        f"  work: {macs / 1e9:.0f} GMAC per epoch ({macs / steps / 1e6:.1f} M per step), "
        f"{params / 1e6:.2f} M parameters ({megabytes:.1f} MB); 1024² matmul here: "
        f"{peak:.1f} GMAC/s, so the matmuls alone take ≥ {macs / peak / 1e9:.2f} s per epoch",
        f"  each step also streams the parameters ≥ 4 times (∂W written, W and ∂W read, W "
        f"written): {4 * megabytes * steps / 1e3:.1f} GB per epoch",
    ]
    for key in "abcd":
        lines.append(
            f"  {LABELS[key]:44s} {macs / med[key] / 1e9:6.1f} GMAC/s "
            f"({100 * macs / med[key] / 1e9 / peak:3.0f} % of peak), "
            f"{1e6 * med[key] / steps:7.1f} µs per step ({1e6 * cpu[key] / steps:.1f} µs CPU)"
        )
    extra, extra_cpu = (1e6 * (d["d"] - d["c"]) / steps for d in (med, cpu))
    lines.append(
        f"  tracing (d − c): {extra:+.1f} µs per step wall, {extra_cpu:+.1f} µs CPU, to square "
        f"and sum {params / 1e6:.2f} M gradient entries ({megabytes:.1f} MB) every step"
    )
    return "\n".join(lines)


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="timed epochs per variant (≥ 3)")
    parser.add_argument("--wide-reps", type=int, default=3, help="the same for the wide net")
    parser.add_argument("--no-wide", action="store_true", help="skip the wide net")
    parser.add_argument(
        "--remedies", action="store_true", help="also Adam + batch norm: Keras fit vs gradsweep"
    )
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra/inter-op")
    parser.add_argument("--data", choices=["auto", "fashion", "synthetic"], default="auto")
    args = parser.parse_args()
    if args.reps < 3 or (not args.no_wide and args.wide_reps < 3):
        parser.error("at least 3 repetitions per variant")

    configure_threads(args.threads)  # before TensorFlow runs an op
    x, y, data_name = load_data(args.data)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} | {cpu} | TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, Python {platform.python_version()} | "
        f"{args.threads} intra/inter-op thread(s) | data: {data_name}"
    )
    print(f"before: {loadavg()}", flush=True)
    peak = matmul_peak(args.threads)
    nets = {"main": args.reps} | ({} if args.no_wide else {"wide": args.wide_reps})
    results = {}
    for name, reps in nets.items():
        results[name] = run_net(name, NETS[name], x, y, reps, args.remedies and name == "main")
    print(f"after: {loadavg()}")
    print()
    for name, times in results.items():
        sizes = "-".join(map(str, NETS[name]))
        reps = len(times["a"]["wall"])
        title = (
            f"{sizes} sigmoid, batch {BATCH}, {N // BATCH} steps: seconds per epoch "
            f"over {reps} interleaved runs"
        )
        print(table(title, times))
        print(where_the_time_goes(NETS[name], times, peak))
        print()
    med = {k: statistics.median(t["wall"]) for k, t in results["main"].items()}
    print(
        f"speedup_vs_fit={med['a'] / med['d']:.2f} speedup_vs_fit_spe={med['b'] / med['d']:.2f} "
        f"trace_overhead={med['d'] / med['c'] - 1:.3f}"
        + (f" adam_bn_speedup_vs_fit={med['e'] / med['f']:.2f}" if "f" in med else "")
    )


if __name__ == "__main__":
    main()
