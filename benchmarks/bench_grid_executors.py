"""Audit-grid wall time: two local processes sharing one results folder (today's way) against a local Ray
instance of 2 CPUs running the same grid's (method, seed) chunks as tasks (issue 15, section 3).

Both run the same grid through the CLI (``fairlin default-audit``) from scratch in fresh temporary folders;
the script prints both wall times and the ratio Ray / processes (goal: at most 1.1). The default grid is a
reduced version of the shipped one (2 methods x 2 budgets x 2 seeds x mitigation off/on, no diagnostics, SNL 20 and
finetune 4 epochs) so that it finishes in a minute on 2 cores; ``--snl-epochs 100 --finetune-epochs 20`` gives its
runs the shipped grid's length (minutes), ``--full`` runs the shipped grid's settings (about 13 minutes per way on 2
cores). Ray's fixed cost (starting the local instance, its workers and shutting down: about 6 s here) weighs less the
longer the grid.

    python -m benchmarks.bench_grid_executors [--snl-epochs 20 --finetune-epochs 4 | --full]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_DIAGNOSTICS = ["--diagnostics", "", "--detail", ""]


def _command(out: Path, grid: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "fairlin_core", "default-audit", "--out", str(out), *grid, *extra]


def two_processes(out: Path, grid: list[str]) -> float:
    """Two `default-audit` processes claiming chunks of one folder, then a third call merging (as documented)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    workers = [subprocess.Popen(_command(out, grid), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    codes = [w.wait() for w in workers]
    subprocess.run(_command(out, grid), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if any(codes):
        raise SystemExit(f"a grid process failed: exit codes {codes}")
    return time.perf_counter() - start


def ray(out: Path, grid: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("FAIRLIN_RAY_ADDRESS", None)
    start = time.perf_counter()
    subprocess.run(_command(out, grid, "--executor", "ray"), env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the shipped grid's settings instead of the reduced grid")
    parser.add_argument("--methods", default="snl,random", help="reduced grid: methods (default snl,random)")
    parser.add_argument("--budgets", default="5%,1%", help="reduced grid: budgets (default 5%%,1%%)")
    parser.add_argument("--seeds", default="0,1", help="reduced grid: seeds (default 0,1)")
    parser.add_argument("--snl-epochs", type=int, default=20, help="reduced grid: SNL epochs (default 20)")
    parser.add_argument("--finetune-epochs", type=int, default=4, help="reduced grid: finetune epochs (default 4)")
    args = parser.parse_args()
    grid = [] if args.full else ["--methods", args.methods, "--budgets", args.budgets, "--seeds", args.seeds,
                                 *NO_DIAGNOSTICS, "--snl-epochs", str(args.snl_epochs), "--finetune-epochs",
                                 str(args.finetune_epochs)]
    with tempfile.TemporaryDirectory() as temp:
        processes = two_processes(Path(temp) / "processes", grid)
        with_ray = ray(Path(temp) / "ray", grid)
    print(f"grid {'(shipped settings)' if args.full else ' '.join(grid)}")
    print(f"two processes sharing a folder: {processes:.1f} s; Ray, 2 local CPUs: {with_ray:.1f} s; "
          f"ratio Ray / processes {with_ray / processes:.2f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
