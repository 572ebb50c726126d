"""BP4 for a mini-batch, Σ over images of δ aᵀ: outer products written out vs the matrix product.

    python benchmarks/bench_weight_gradient.py
    python benchmarks/bench_weight_gradient.py --batches 10 --shapes 784x100 100x100

Each variant is one XLA-compiled loop of ``--steps`` SGD-like updates W ← 0.999 W − 0.1 ∂W,
with ∂W (n_out × n_in, Nielsen's orientation) either ``tf.matmul(δ, a, transpose_a=True)``
(Eigen) or ``tf.reduce_sum(δ[:, :, None] * a[:, None, :], axis=0)`` (one XLA fusion), on one
thread; 3 interleaved repetitions after a warm-up, medians in µs per update. The ratio
outer/matmul < 1 is where ``gradsweep.train.weight_gradient`` writes the products out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def matmul(delta: tf.Tensor, a: tf.Tensor) -> tf.Tensor:
    return tf.matmul(delta, a, transpose_a=True)


def outer(delta: tf.Tensor, a: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(delta[:, :, None] * a[:, None, :], axis=0)


def loop(grad, delta: tf.Tensor, a: tf.Tensor, steps: int):
    def run() -> tf.Tensor:
        w, i = tf.zeros((delta.shape[1], a.shape[1])), tf.constant(0)
        while i < steps:  # δ changes every step, so nothing is hoisted out of the loop
            w = 0.999 * w - 0.1 * grad(delta + tf.cast(i, tf.float32) * 1e-6, a)
            i += 1
        return w

    return tf.function(run, jit_compile=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[5, 10, 16, 32, 64])
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=["100x10", "100x100", "784x30", "784x100", "512x256", "1000x1000"],
        help="n_in x n_out of the layer",
    )
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'batch':>5s} {'n_in x n_out':>13s} {'matmul µs':>10s} {'outer µs':>9s} {'ratio':>6s}")
    for batch in args.batches:
        for shape in args.shapes:
            n_in, n_out = map(int, shape.split("x"))
            a = tf.constant(rng.random((batch, n_in), dtype=np.float32))
            delta = tf.constant(rng.random((batch, n_out), dtype=np.float32))
            fns = {name: loop(g, delta, a, args.steps) for name, g in (("m", matmul), ("o", outer))}
            us: dict[str, list[float]] = {name: [] for name in fns}
            for fn in fns.values():
                fn().numpy()
            for _ in range(3):
                for name, fn in fns.items():
                    t0 = time.perf_counter()
                    fn().numpy()
                    us[name].append((time.perf_counter() - t0) / args.steps * 1e6)
            m, o = statistics.median(us["m"]), statistics.median(us["o"])
            print(f"{batch:5d} {shape:>13s} {m:10.2f} {o:9.2f} {o / m:6.2f}", flush=True)


if __name__ == "__main__":
    main()
