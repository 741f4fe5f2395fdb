"""Toy lab speed: seconds to train one 2x16 MLP (1,000 points, 2,000 full-batch steps) and to evaluate
its decision boundary on a 200x200 grid, against the targets (3 s and 100 ms), medians of a few runs.

    python benchmarks/bench_toy.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fairlin_core.models import resolve_spec
from fairlin_core.toy import ToyConfig, data_extent, decision_grid, load_toy, train_toy_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = ToyConfig(n=1000)
    bundle = load_toy(config, seed=0)
    spec = resolve_spec("mlp", 2, (2,), depth=config.depth, width=config.width)
    train_times, grid_times = [], []
    for seed in range(args.repeats):
        start = time.perf_counter()
        model, _ = train_toy_model(bundle, spec, steps=2000, seed=seed)
        train_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        decision_grid(model, data_extent(bundle), 200)
        grid_times.append(time.perf_counter() - start)
    train, grid = statistics.median(train_times), statistics.median(grid_times)
    print(f"train one model: {train:.2f} s (target 3 s, ratio {train / 3.0:.2f})")
    print(f"200x200 boundary grid: {grid * 1000:.1f} ms (target 100 ms, ratio {grid / 0.1:.2f})")


if __name__ == "__main__":
    main()
