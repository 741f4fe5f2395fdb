"""CLI start-up: ``fairlin --help`` and ``python -m fairlin_core --help`` against ``python -c "import torch"``.

Each command runs in a fresh interpreter ``--repeats`` times; the script prints the median wall time of each
and the ratios to the torch import measured in the same run (target: at most 0.5x). Run from the repository
root: ``python benchmarks/bench_cli_startup.py`` or ``python -m benchmarks.bench_cli_startup``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "python -m fairlin_core --help": [sys.executable, "-m", "fairlin_core", "--help"],
    "fairlin --help": [shutil.which("fairlin") or "fairlin", "--help"],
}


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="fresh processes per command (default 7)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):  # interleaved, so a busy moment hits every command alike
        for name, command in COMMANDS.items():
            times[name].append(wall_time(command))
    baseline = statistics.median(times["import torch"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:32s} median {median * 1000:7.1f} ms  ratio to import torch {median / baseline:.2f}")


if __name__ == "__main__":
    main()
