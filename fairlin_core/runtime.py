"""Shared plumbing: device choice, progress reports (and their rescaling), cooperative cancel, batching,
strict-JSON values, comma-separated lists (and merging their duplicates), file digests and process liveness."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # torch is imported by the functions that use it: reading results needs no torch
    import torch


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    import torch
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


def scaled_progress(progress: ProgressFn | None, start: float, end: float, prefix: str = "",
                    **metrics: Any) -> ProgressFn | None:
    """A callback that maps a sub-task's own [0, 1] onto [start, end] of the caller's progress.

    prefix: put before each message (``{stage}`` in it is replaced by the sub-task's stage);
    metrics: added to each report's metrics (e.g. the seed and model of a toy run).
    """
    if progress is None:
        return None

    def forward(update: Progress) -> None:
        label = prefix.replace("{stage}", update.stage)
        progress(Progress(start + (end - start) * update.fraction, update.stage, label + update.message,
                          {**metrics, **update.metrics}))
    return forward


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``, shuffled when ``generator`` is given.

    A trailing batch of a single example is merged into the previous one, so batch norm in train
    mode never sees a batch of one.
    """
    import torch
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        yield order[start:end]


def json_ready(value: Any) -> Any:
    """NaN -> None and numpy scalars -> Python, recursively through dicts, lists and tuples (dict keys become
    strings), so ``json.dumps(..., allow_nan=False)`` accepts the result."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the items of a comma-separated option, stripped, empties dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def merge_duplicates(items: Iterable[Any], what: str, key: Callable[[Any], Any] | None = None,
                     unit: str = "") -> tuple[list[Any], list[str]]:
    """``items`` in first-seen order with duplicates merged, and one note per merged group.

    key: what makes two items the same (default: the item itself; e.g. the ReLU count a budget resolves
    to); unit: how to name a key in the note (``"ReLUs"``). ``merge_duplicates([0, 0, 1], "seed")`` ->
    ``([0, 1], ["seed 0 was given 2 times; it counts once"])``. Duplicates would fake statistics (two
    identical seeds give a zero-width interval) or write the same run twice.
    """
    key = key or (lambda item: item)
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    notes = []
    for k, group in groups.items():
        if len(group) < 2:
            continue
        if len(set(map(repr, group))) == 1:
            notes.append(f"{what} {group[0]!r} was given {len(group)} times; it counts once")
        else:
            same = f" ({k} {unit})" if unit else ""
            notes.append(f"{what}s {', '.join(map(repr, group))} are the same{same}; kept {group[0]!r} only")
    return [group[0] for group in groups.values()], notes


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
