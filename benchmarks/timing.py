"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(fn: Callable[[], Any], repeats: int, warm_up: bool = False) -> tuple[float, Any]:
    """(fastest of ``repeats`` calls in seconds, the last call's result); ``warm_up`` runs one untimed call first."""
    if warm_up:
        fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result
