"""Loading full-size CIFAR-10 (synthetic, in the real ``cifar-10-batches-py`` layout): time against a bare read
of the same batches, and peak memory against the uint8 data plus one float32 copy of the training split (issue 15).

Each measurement runs in a fresh process (peak RSS is per process). Goals: load time <= 1.5x the bare read;
peak memory growth <= 1.5x (uint8 bytes + float32 training split bytes).

    python -m benchmarks.bench_cifar_load [--train 50000 --test 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    from benchmarks.cifar_layout import write_cifar_layout
except ImportError:  # run as a script from benchmarks/
    from cifar_layout import write_cifar_layout

CHILD = r"""
import json, resource, sys, time
import numpy as np
from fairlin_core.data import load_dataset
from pathlib import Path
from fairlin_core.data.cifar10 import FOLDER, TEST_FILE, TRAIN_FILES, read_batch
root, mode = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if mode == "bare":
    parts = [read_batch(Path(root) / FOLDER / name) for name in (*TRAIN_FILES, TEST_FILE)]
    train = 0
else:
    bundle = load_dataset("cifar10", data_root=root, seed=0)
    train = bundle.splits["train"].x.numel() * 4
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "growth_bytes": (peak - before) * 1024, "train_float32_bytes": train}))
"""


def measure(root: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, root, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        write_cifar_layout(Path(root), args.train, args.test)
        bare = min((measure(root, "bare") for _ in range(args.repeats)), key=lambda r: r["seconds"])
        load = min((measure(root, "load") for _ in range(args.repeats)), key=lambda r: r["seconds"])
    uint8 = (args.train + args.test) * 3072
    budget = uint8 + load["train_float32_bytes"]
    print(f"bare numpy read of the batches: {bare['seconds']:.2f} s; FairLin load_dataset('cifar10'): "
          f"{load['seconds']:.2f} s; ratio {load['seconds'] / bare['seconds']:.2f} (goal <= 1.5)")
    print(f"peak memory growth {load['growth_bytes'] / 2**20:.0f} MiB vs uint8 {uint8 / 2**20:.0f} MiB + float32 train "
          f"{load['train_float32_bytes'] / 2**20:.0f} MiB = {budget / 2**20:.0f} MiB: ratio "
          f"{load['growth_bytes'] / budget:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
