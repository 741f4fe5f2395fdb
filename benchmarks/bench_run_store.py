"""Run store and job manager speed against the issue's targets.

1. Listing: a store holding 10,000 runs (claimed through the store with real validated configs), time of
   ``RunStore.list_runs()`` (every run, configs parsed) and of ``list_runs("done")``: median and best wall
   time over repeats and CPU time, vs the 200 ms target.
2. Submit-to-start: with a free worker, time from ``JobManager.submit(config)`` (validation,
   canonical hash, claim in SQLite, queueing) until the worker has marked the run running and made
   its folder, median and worst over jobs (each a real toy run, awaited before the next), vs 100 ms.

Ratios are measured / target (below 1 meets it).

    python benchmarks/bench_run_store.py [--runs 10000] [--repeats 7] [--jobs 20]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.jobs import JobConfig, JobManager, LocalThreadExecutor, RunStore

TOY = str(SHIPPED_CHECKPOINTS / "toy2d_mlp.safetensors")
LIST_TARGET_S = 0.200
START_TARGET_S = 0.100


def fill(store: RunStore, runs: int) -> None:
    """Claim ``runs`` runs through the store (real validated configs: method x budget x seed x mitigation),
    then mark 80% done, 10% failed, 10% interrupted with results."""
    base = JobConfig.from_dict({"checkpoint": TOY, "method": "snl", "budget": 0.5,
                                "diagnostics": ["accuracy"]}).validate().to_dict()
    for i in range(runs):
        config = {**base, "method": ("snl", "deepreduce", "random")[i % 3], "budget": 1 + i % 32,
                  "seed": i // 192, "mitigation": None if i % 2 else {"mu": 0.01, "tolerance": 0.0}}
        store.claim(hashlib.sha256(str(i).encode()).hexdigest(), config)
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET status = CASE rowid % 10 WHEN 8 THEN 'failed' WHEN 9 THEN 'interrupted' "
                   "ELSE 'done' END, started = created, finished = created, relu_count = 16, "
                   "overall_accuracy = 0.9, worst_group_accuracy = 0.8")


def timings(call, repeats: int) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU time of this thread), in seconds. On a shared machine the
    CPU time shows the cost without the waiting for a core."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.thread_time()
        call()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def report_listing(label: str, call, repeats: int) -> None:
    wall, best, cpu = timings(call, repeats)
    print(f"{label}: median {wall * 1e3:.1f} ms, best {best * 1e3:.1f} ms, CPU {cpu * 1e3:.1f} ms "
          f"(target {LIST_TARGET_S * 1e3:.0f} ms, ratio {wall / LIST_TARGET_S:.2f}, best {best / LIST_TARGET_S:.2f})")


class TimedExecutor(LocalThreadExecutor):
    """Records when each job's run was claimed by a worker (its start callback returned)."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.started: dict[str, float] = {}

    def submit(self, job) -> None:
        claim = job.start

        def start():
            run_dir = claim()
            self.started[job.run_id] = time.perf_counter()
            return run_dir
        job.start = start
        super().submit(job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "listing")
        fill(store, args.runs)
        assert len(store.list_runs()) == args.runs
        report_listing(f"list_runs(), {args.runs} runs", store.list_runs, args.repeats)
        done = len(store.list_runs("done"))
        report_listing(f"list_runs('done'), {done} runs", lambda: store.list_runs("done"), args.repeats)

        executor = TimedExecutor()
        manager = JobManager(Path(folder) / "latency", executor=executor)
        latencies = []
        try:
            for seed in range(args.jobs + 1):
                submitted = time.perf_counter()
                run_id = manager.submit({"checkpoint": TOY, "method": "random", "budget": 0.5, "seed": seed,
                                         "finetune": {"epochs": 0}})
                manager.wait([run_id])
                latencies.append(executor.started[run_id] - submitted)
        finally:
            manager.shutdown()
        warm = latencies[1:]  # the first submit also hashes the checkpoint file once
        middle = statistics.median(warm)
        print(f"submit-to-start, {len(warm)} jobs, free worker: median {middle * 1e3:.1f} ms, worst "
              f"{max(warm) * 1e3:.1f} ms, first {latencies[0] * 1e3:.1f} ms (target {START_TARGET_S * 1e3:.0f} ms, "
              f"ratio {middle / START_TARGET_S:.3f}, worst {max(warm) / START_TARGET_S:.3f})")


if __name__ == "__main__":
    main()
