"""Does gradsweep train correctly, and faster, on this machine's GPU? One command, < 5 minutes.

    python benchmarks/gpu_check.py                  # skips (exit 0) where there is no GPU
    python benchmarks/gpu_check.py --stand-in cpu   # everything but the device, on the CPU

1. Trains the smoke sweep's nets (config/smoke.yaml: 8 nets, 3 epochs on sklearn's digits) as
   one batch (``gradsweep.run.train_batch``) on the GPU and again on the CPU, each in a fresh
   process (the CPU one with ``CUDA_VISIBLE_DEVICES=""``), and compares the two traces.
   Tolerance: GPUs compute float32 products in another order, and TensorFlow uses TF32 for
   them on Ampere and newer, so the numbers are close, not equal, and SGD lets differences
   grow. Per run: the gradient norms at initialisation (epoch 0 probe) within a relative
   1e-2; all gradient norms within a median relative difference of 2e-2; each epoch's train
   and test accuracy within 0.03 (absolute); a run diverges on both devices or on neither.
2. Times one epoch of the 784-2048-1024-512-256-10 net (batch 10, every step traced, 50,000
   random MNIST-shaped images) on each device: a warm-up call compiles, the next is timed;
   ``--steps`` of 5,000 by default (the seed's epoch); the CPU with ``--threads`` (default 1,
   a train job's default; ~37 s on the project's VM, benchmarks/README.md).

The last line: ``key=value`` figures. Exit status 1 if a comparison is out of tolerance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PROBE_RTOL = 1e-2
MEDIAN_RTOL = 2e-2
ACC_ATOL = 0.03
WIDE = [2048, 1024, 512, 256]


def smoke_runs() -> list[dict]:
    import yaml

    from gradsweep.config import expand_runs

    return expand_runs(yaml.safe_load((ROOT / "config/smoke.yaml").read_text()))


def device_env(device: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # TensorFlow then sees no GPU
    return env


def worker(args: argparse.Namespace) -> None:
    """In a fresh process on one device: train the smoke batch, or time the wide net."""
    if args.worker == "train":
        from gradsweep.run import train_batch

        folder = Path(args.folder)
        train_batch(
            smoke_runs(),
            data=folder / "digits.npz",
            manifest=folder / args.side / "batch.json",
            cache=folder / args.side / "cache",
            checkpoints=folder / args.side / "checkpoints",
            logs=folder / args.side / "logs",
            progress=lambda line: None,
        )
        return
    import numpy as np
    import tensorflow as tf

    from gradsweep.model import DenseNet
    from gradsweep.run import _setup_tensorflow
    from gradsweep.train import SGD, Trainer, epoch_batches

    device = _setup_tensorflow(threads=args.threads)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((50_000, 784), dtype=np.float32))
    y = tf.one_hot(rng.integers(0, 10, 50_000), 10)
    net = DenseNet([784, *WIDE, 10], "sigmoid", "scaled_normal")
    trainer = Trainer(net, "sigmoid_cross_entropy", SGD(learning_rate=0.1, batch_size=10))
    seconds = []
    for epoch in (1, 2):  # the first call compiles
        batches = tf.constant(epoch_batches(50_000, 10, 0, epoch)[: args.steps])
        start = time.perf_counter()
        trainer.train_epoch(x, y, batches)["grad"].numpy()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"device": device, "compile_and_epoch_s": seconds[0], "epoch_s": seconds[1]}))


def run_worker(args: list[str], device: str) -> str:
    """This script with ``--worker args`` in a fresh process on ``device``; its last line."""
    result = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        env=device_env(device),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode:
        sys.exit(f"the {device} worker {args} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def compare(gpu: Path, cpu: Path) -> dict[str, float]:
    """Largest differences over the smoke runs between two train_batch caches (see above)."""
    import numpy as np
    import pandas as pd

    worst = {"probe0_rel": 0.0, "median_rel": 0.0, "acc_abs": 0.0, "status_mismatch": 0.0}
    manifests = [json.loads((d / "batch.json").read_text())["runs"] for d in (gpu, cpu)]
    for a, b in zip(*manifests, strict=True):
        assert a["run_id"] == b["run_id"]
        ta, tb = (pd.read_parquet(Path(m["cache"]) / "traces.parquet") for m in (a, b))
        ma, mb = (pd.read_parquet(Path(m["cache"]) / "metrics.parquet") for m in (a, b))
        if a.get("status") != b.get("status"):
            worst["status_mismatch"] += 1
            continue
        keys = ["epoch", "step", "layer", "param", "source"]
        both = ta.merge(tb, on=keys, suffixes=("_a", "_b"))
        if len(both) != len(ta) or len(both) != len(tb):
            worst["status_mismatch"] += 1
            continue
        rel = (both["grad_norm_a"] - both["grad_norm_b"]).abs() / both["grad_norm_b"].abs().clip(
            lower=1e-12
        )
        probe0 = (both["source"] == "probe") & (both["epoch"] == 0)
        worst["probe0_rel"] = max(worst["probe0_rel"], float(rel[probe0].max()))
        worst["median_rel"] = max(worst["median_rel"], float(np.nanmedian(rel)))
        acc = (ma[["train_acc", "test_acc"]] - mb[["train_acc", "test_acc"]]).abs()
        worst["acc_abs"] = max(worst["acc_abs"], float(np.nanmax(acc.to_numpy())))
    return worst


def within_tolerance(worst: dict[str, float]) -> bool:
    return (
        worst["status_mismatch"] == 0
        and worst["probe0_rel"] <= PROBE_RTOL
        and worst["median_rel"] <= MEDIAN_RTOL
        and worst["acc_abs"] <= ACC_ATOL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stand-in",
        choices=["cpu"],
        help="run every step with the CPU standing in for the GPU (to test this script)",
    )
    parser.add_argument("--steps", type=int, default=5000, help="SGD steps of the timed epoch")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (default 1: a train job's default)"
    )
    parser.add_argument("--worker", choices=["train", "time"], help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    t0 = time.perf_counter()
    gpu = "cpu" if args.stand_in else "gpu"
    if not args.stand_in:
        probe = subprocess.run(
            [sys.executable, "-c", "import tensorflow as tf; "
             "print(len(tf.config.list_physical_devices('GPU')))"],
            env=device_env("gpu"), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if probe.returncode or probe.stdout.strip().splitlines()[-1:] in ([], ["0"]):
            print("No GPU visible to TensorFlow here: the GPU check is skipped.")
            print("gpu=none skipped=1")
            return
    from gradsweep import data

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp)
        data.prepare("digits", [], folder / "digits.npz")
        (folder / "gpu").mkdir()
        (folder / "cpu").mkdir()
        # the stand-in trains into the "gpu" folder with the CPU: same code path, same checks
        for side, device in (("gpu", gpu), ("cpu", "cpu")):
            run_worker(["train", "--side", side, "--folder", str(folder)], device)
        devices = [
            json.loads(next((folder / side / "cache").rglob("run.json")).read_text())["device"]
            for side in ("gpu", "cpu")
        ]
        worst = compare(folder / "gpu", folder / "cpu")
    timing = {
        side: json.loads(
            run_worker(["time", "--steps", str(args.steps), "--threads", str(args.threads)], device)
        )
        for side, device in (("gpu", gpu), ("cpu", "cpu"))
    }
    ok = within_tolerance(worst)
    print(f"smoke nets trained on {devices[0]} and on {devices[1]}")
    print(
        f"largest differences: epoch-0 probe norms {worst['probe0_rel']:.2e} relative "
        f"(tolerance {PROBE_RTOL:g}), median over all norms {worst['median_rel']:.2e} "
        f"({MEDIAN_RTOL:g}), accuracy {worst['acc_abs']:.4f} ({ACC_ATOL:g}), runs whose "
        f"divergence differs: {worst['status_mismatch']:.0f} (0) -> "
        f"{'within tolerance' if ok else 'OUT OF TOLERANCE'}"
    )
    for side in ("gpu", "cpu"):
        print(
            f"784-2048-1024-512-256-10, {args.steps} steps on {timing[side]['device']}: "
            f"{timing[side]['epoch_s']:.2f} s (first call, with compiling: "
            f"{timing[side]['compile_and_epoch_s']:.2f} s)"
        )
    figures = {
        "gpu": devices[0].replace(" ", "_"),
        "stand_in": int(bool(args.stand_in)),
        "traces_ok": int(ok),
        "probe0_rel": f"{worst['probe0_rel']:.2e}",
        "median_rel": f"{worst['median_rel']:.2e}",
        "acc_abs": f"{worst['acc_abs']:.4f}",
        "wide_steps": args.steps,
        "gpu_epoch_s": f"{timing['gpu']['epoch_s']:.2f}",
        "cpu_epoch_s": f"{timing['cpu']['epoch_s']:.2f}",
        "speedup": f"{timing['cpu']['epoch_s'] / timing['gpu']['epoch_s']:.2f}",
        "check_s": f"{time.perf_counter() - t0:.0f}",
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
