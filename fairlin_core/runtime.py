"""Shared plumbing for long operations: device choice, progress reports, cooperative cancel, batching."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Progress:
    """One progress report: fraction done in [0, 1], the current stage, a message, latest metrics."""

    fraction: float
    stage: str
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]


class CancelFlag(Protocol):
    """Anything with ``is_set()``, e.g. ``threading.Event``."""

    def is_set(self) -> bool: ...


class Cancelled(Exception):
    """Raised inside a long operation when its cancel flag is set; nothing half-done is kept."""


def check_cancel(cancel: CancelFlag | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled by request")


def report(progress: ProgressFn | None, fraction: float, stage: str, message: str = "", **metrics: Any) -> None:
    if progress is not None:
        progress(Progress(min(max(fraction, 0.0), 1.0), stage, message, metrics))


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``, shuffled when ``generator`` is given.

    A trailing batch of a single example is merged into the previous one, so batch norm in train
    mode never sees a batch of one.
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        yield order[start:end]
