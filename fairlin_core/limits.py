"""Bounds of every number a user sets for a run: its sizes (``RUN_LIMITS``) and its real-valued settings.

The CLI's flag types (:mod:`fairlin_core.cli.common`), the configs (SNL, finetune, mitigation, toy, audit grid,
jobs) and the notebook API check through these functions, so ``--finetune-epochs 10**12``, a notebook's
``fl.compare(..., seeds=range(10**9))`` and a job config with ``inf`` are refused the same way, before any work.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from .errors import FairLinError, brief

T = TypeVar("T")

# Upper bounds of every run size (all integers). Far above what anyone runs, far below a loop without end or a
# history that exhausts memory (``models.registry.LIMITS`` bounds the sizes of a model the same way).
RUN_LIMITS: dict[str, int] = {
    "seeds": 1_000,            # seeds of one compare, sweep, audit grid or toy run
    "budgets": 100,            # ReLU budgets of one compare, sweep or audit grid; shares of one toy sweep
    "runs": 10_000,            # runs one sweep queues (methods x budgets x seeds x mitigations)
    "epochs": 100_000,         # epochs of any training: base (full-batch steps for an MLP), SNL, finetune
    "steps": 1_000_000,        # full-batch steps of a toy model
    "lanczos_steps": 1_000,    # Lanczos steps (Hessian-vector products) of one Hessian eigenvalue or spectrum
    "lanczos_runs": 100,       # Lanczos runs of one spectral density
    "attribution_steps": 1_000,  # integrated-gradients steps of one attribution
    "bootstrap_draws": 100_000,  # bootstrap replicates of one interval
    "workers": 1_024,          # runs at a time
    "retries": 100,            # retries of a run whose worker died
}


def check_count(value: object, name: str, limit: str, minimum: int = 1,
                error: type[FairLinError] = FairLinError) -> int:
    """``value`` as an int in ``[minimum, RUN_LIMITS[limit]]`` (booleans are no integers), else ``error`` naming
    ``name``."""
    top = RUN_LIMITS[limit]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= top:
        raise error(f"{name} must be {count_range(limit, minimum)}, got {brief(value)}")
    return int(value)


def count_range(limit: str, minimum: int = 1) -> str:
    """What :func:`check_count` expects, in words: ``a positive integer at most 100,000``."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    return f"{kind} at most {RUN_LIMITS[limit]:,}"


def check_many(items: Iterable[T], what: str, limit: str, error: type[FairLinError] = FairLinError) -> list[T]:
    """``items`` as a list, refused when it holds more than ``RUN_LIMITS[limit]`` (``what``: e.g. "seeds").
    At most one item past the limit is drawn, so ``range(10**9)`` or an endless generator is refused at once."""
    top = RUN_LIMITS[limit]
    listed = list(itertools.islice(items, top + 1))
    if len(listed) > top:
        given = f"{len(items):,}" if hasattr(items, "__len__") else "more"
        raise error(f"at most {top:,} {what} are allowed in one run, got {given}; expected fewer")
    return listed


@dataclass(frozen=True)
class Interval:
    """Where a real-valued setting lies: ``low``/``high`` (None = unbounded), each end open or closed.
    Every value is finite besides (``inf`` and ``nan`` are always refused)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        """``> 0``, ``>= 1``, ``in [0, 1)``, ... (empty when unbounded)."""
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return ""


FINITE = Interval()
POSITIVE = Interval(0.0, low_open=True)
NON_NEGATIVE = Interval(0.0)
FRACTION = Interval(0.0, 1.0)  # [0, 1]
PROPER_FRACTION = Interval(0.0, 1.0, high_open=True)  # [0, 1)


def check_real(value: object, name: str, interval: Interval = FINITE,
               error: type[FairLinError] = FairLinError) -> float:
    """``value`` as a float, finite and in ``interval``, else ``error`` naming ``name``: e.g. ``mitigation eta must
    be a finite number > 0, got inf``, ``mitigation eta must be > 0, got -1.0``."""
    number = _as_float(value)
    if number is None or not math.isfinite(number):
        raise error(f"{name} must be a finite number {interval}".rstrip() + f", got {brief(value)}")
    if number not in interval:
        raise error(f"{name} must be {interval}, got {brief(value)}")
    return number


def _as_float(value: object) -> float | None:
    """A real ``value`` as a float (None for booleans, non-numbers and integers too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        return None
