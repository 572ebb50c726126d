"""The "sins of the sigmoid" cost claim: sigmoid vs ReLU, forward + backward, TensorFlow on CPU.

Times one activation's forward pass and its backward pass (the gradient with respect to its
input, given an upstream gradient) on a (batch × units) float32 tensor, and the same inside a
whole dense layer (x @ W + b, activation, gradients for x, W and b), where the matrix products
dominate. Activations are timed in interleaved repetitions (every repetition times each one
once, in alternating order), so a change in machine load hits all of them alike; the result
is the median over repetitions of the per-repetition time ratio, and the medians of the times.

    python benchmarks/bench_activations.py [--batch 1000] [--units 1000] [--reps 41]

The last line is ``sigmoid_vs_relu=<ratio>`` (activation alone, forward + backward).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only, even where a GPU exists

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ACTIVATIONS = {
    "sigmoid": tf.sigmoid,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "softplus": tf.nn.softplus,
}


def activation_step(act):
    """Forward and backward of the activation alone: returns dC/dz given dC/da."""

    @tf.function
    def step(z, upstream):
        with tf.GradientTape() as tape:
            tape.watch(z)
            a = act(z)
        return a, tape.gradient(a, z, output_gradients=upstream)

    return step


def dense_step(act):
    """Forward and backward of a dense layer a = act(x W + b): gradients for x, W and b."""

    @tf.function
    def step(x, w, b, upstream):
        with tf.GradientTape() as tape:
            tape.watch([x, w, b])
            a = act(tf.matmul(x, w) + b)
        return a, tape.gradient(a, [x, w, b], output_gradients=upstream)

    return step


def time_block(fn, args, inner: int) -> float:
    """Seconds per call, averaged over ``inner`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(inner):
        out = fn(*args)
    _ = out[0][0, 0].numpy()  # make sure the last call has finished
    return (time.perf_counter() - start) / inner


def interleaved(steps: dict, args, reps: int, inner: int) -> dict[str, list[float]]:
    """Time every step once per repetition, alternating the order between repetitions."""
    names = list(steps)
    for name in names:  # trace, compile and warm the caches
        time_block(steps[name], args, max(2, inner // 4))
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            times[name].append(time_block(steps[name], args, inner))
    return times


def summarise(times: dict[str, list[float]], label: str) -> float:
    """Print medians and paired ratios to ReLU; return sigmoid ÷ ReLU (median paired ratio)."""
    relu = np.array(times["relu"])
    print(f"{label}: median time per forward + backward, and ÷ ReLU per repetition")
    result = float("nan")
    for name, t in times.items():
        t = np.array(t)
        ratios = t / relu
        q1, med, q3 = np.percentile(ratios, [25, 50, 75])
        print(
            f"  {name:9s} {1e3 * statistics.median(t):8.3f} ms   "
            f"÷ relu: median {med:5.2f} (IQR {q1:.2f}–{q3:.2f}), "
            f"ratio of medians {statistics.median(t) / statistics.median(relu):5.2f}, "
            f"ratio of minima {t.min() / relu.min():5.2f}"
        )
        if name == "sigmoid":
            result = float(med)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1000, help="rows (images) per tensor")
    parser.add_argument("--units", type=int, default=1000, help="units in the layer")
    parser.add_argument("--reps", type=int, default=41, help="interleaved repetitions")
    parser.add_argument("--inner", type=int, default=20, help="calls timed together")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense-layer timing")
    opts = parser.parse_args()

    tf.config.threading.set_intra_op_parallelism_threads(opts.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    shape = (opts.batch, opts.units)
    z = tf.constant(rng.normal(0, 2, shape), tf.float32)
    upstream = tf.constant(rng.normal(0, 1, shape), tf.float32)
    load = os.getloadavg()
    print(
        f"TensorFlow {tf.__version__} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {opts.threads} intra-op thread(s); "
        f"load average {load[0]:.2f} at start"
    )
    print(
        f"tensor {opts.batch} × {opts.units} float32, {opts.reps} interleaved repetitions "
        f"of {opts.inner} calls each"
    )

    steps = {name: activation_step(act) for name, act in ACTIVATIONS.items()}
    ratio = summarise(interleaved(steps, (z, upstream), opts.reps, opts.inner), "activation")

    if not opts.no_dense:
        x = tf.constant(rng.normal(0, 1, shape), tf.float32)
        w = tf.constant(
            rng.normal(0, 1 / np.sqrt(opts.units), (opts.units, opts.units)), tf.float32
        )
        b = tf.constant(rng.normal(0, 1, (opts.units,)), tf.float32)
        dense = {name: dense_step(ACTIVATIONS[name]) for name in ("sigmoid", "relu")}
        inner = max(2, opts.inner // 10)
        dense_ratio = summarise(
            interleaved(dense, (x, w, b, upstream), opts.reps, inner), "dense layer"
        )
        print(f"dense_sigmoid_vs_relu={dense_ratio:.3f}")
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    print(f"sigmoid_vs_relu={ratio:.3f}")


if __name__ == "__main__":
    main()
