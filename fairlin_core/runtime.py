"""Shared plumbing: device choice and training speed-ups (precision, memory layout), progress reports (and their
rescaling), cooperative cancel, batching, strict-JSON values, comma-separated lists (and merging their
duplicates), file digests, process liveness and the model-code switch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .errors import FairLinError, brief, clip

if TYPE_CHECKING:  # torch is imported by the functions that use it: reading results needs no torch
    import torch


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager[Any]:
    """The forward passes' precision: bf16 autocast on CUDA for ``bf16``; otherwise (fp32, or any CPU run)
    nothing changes, so CPU results stay bit-identical. ValueError for another precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    import torch
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def for_training(model: Any, device: torch.device) -> Any:
    """``model`` ready for fast training on ``device``: on CUDA cuDNN autotuning is switched on and
    convolutional models use the channels_last layout; on CPU it is returned unchanged."""
    if device.type == "cuda":
        import torch
        torch.backends.cudnn.benchmark = True
        if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            model = model.to(memory_format=torch.channels_last)
    return model


def eval_batch_size(device: torch.device) -> int:
    """Batch size of evaluation passes (no gradients are kept): 4,096 on CUDA; 128 on CPU, where larger batches
    fall out of the caches (ResNet18 width 16 on 32x32 images: 512 per batch took 1.8x the time per image of
    128, with bit-identical logits)."""
    return 4096 if device.type == "cuda" else 128


RESIDENT_SHARE = 0.5  # training data stays on a GPU when it takes at most this share of its free memory


class DeviceRows:
    """Rows of equally long tensors (N, ...) served on ``device`` batch by batch.

    On CPU the tensors are used as they are. On CUDA they are copied to the device once when together they take
    at most ``resident_share`` of its free memory (rows are then gathered on the device: no host transfer per
    batch); otherwise they stay on the host and each batch is gathered there, pinned and copied asynchronously
    (``non_blocking``), as a ``DataLoader(pin_memory=True)`` would. :attr:`resident` says which.
    """

    def __init__(self, *tensors: torch.Tensor, device: torch.device, resident_share: float = RESIDENT_SHARE) -> None:
        import torch
        self.device = device
        size = sum(t.numel() * t.element_size() for t in tensors)
        self.resident = device.type != "cuda" or size <= resident_share * torch.cuda.mem_get_info(device)[0]
        self.tensors = tuple(t.to(device) if self.resident else t.cpu() for t in tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def rows(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The rows ``index`` (a CPU int64 tensor (B,)) of every tensor, on the device."""
        if self.resident:
            index = index.to(self.device, non_blocking=True)
            return tuple(t[index] for t in self.tensors)
        return tuple(t[index].pin_memory().to(self.device, non_blocking=True) for t in self.tensors)


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
    """NaN and infinities -> None (JSON's null: a metric of an empty group is NaN, one of NaN weights too) and
    numpy / torch scalars and arrays -> Python, recursively through dicts, lists and tuples (dict keys become
    strings), so ``json.dumps(..., allow_nan=False)`` accepts the result."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_ready(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_records(table: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as strict-JSON dicts (NaN -> None, numpy scalars -> Python, floats to 15 digits)."""
    return json.loads(table.to_json(orient="records", double_precision=15))


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the items of a comma-separated option, stripped, empties dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def format_interval(mean: float, ci_low: float, ci_high: float, digits: int = 1) -> str:
    """A mean with its interval as the pages and reports print it: ``"97.1 [95.3, 98.9]"`` (the mean alone
    when the interval is NaN, e.g. one seed; "–" when the mean is NaN). Values are printed as given (scale
    fractions to % first)."""
    def number(value: float) -> str:
        return f"{value:.{digits}f}"
    if mean is None or math.isnan(mean):
        return "–"
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return number(mean)
    return f"{number(mean)} [{number(ci_low)}, {number(ci_high)}]"


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
            notes.append(f"{what} {brief(group[0])} was given {len(group)} times; it counts once")
        else:
            same = f" ({k} {unit})" if unit else ""
            notes.append(f"{what}s {clip(', '.join(map(repr, group)))} are the same{same}; kept {brief(group[0])} only")
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


MODEL_CODE_ENV = "FAIRLIN_TRUSTED_MODEL_CODE"
FACTORY_PATTERN = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*")
MAX_FACTORY_LENGTH = 200  # characters of a "package.module:function" name


def check_factory(factory: object, error: type[FairLinError] = FairLinError) -> str:
    """``factory`` if it names a model factory, ``"package.module:function"`` of at most ``MAX_FACTORY_LENGTH``
    characters; else ``error``."""
    if not isinstance(factory, str) or len(factory) > MAX_FACTORY_LENGTH or not FACTORY_PATTERN.fullmatch(factory):
        raise error(f"model code {brief(factory)} is not of the form package.module:function (at most "
                    f"{MAX_FACTORY_LENGTH} characters, e.g. mymodels.cnn:build)")
    return factory


def trust_model_code(*factories: str) -> None:
    """Allow these model factories (``"package.module:function"``) to be imported and run in this process and
    the job workers it starts, when a checkpoint's sidecar names one (``--model-code`` checkpoints). A
    sidecar is never trusted by itself: the user names the factory (CLI ``--trust-model-code``, the notebook's
    ``fl.trust_model_code(...)``, or ``--model-code`` at import); the dashboard never does. A name that is no
    factory (see :func:`check_factory`) is refused, before any is trusted."""
    named = {check_factory(factory.strip()) for factory in factories if factory.strip()}
    if named:
        os.environ[MODEL_CODE_ENV] = ",".join(sorted(_trusted() | named))


def _trusted() -> set[str]:
    return {f for f in os.environ.get(MODEL_CODE_ENV, "").split(",") if f}


def model_code_trusted(factory: str) -> bool:
    """Whether ``factory`` was named in :func:`trust_model_code` in this process (or its parent)."""
    return factory in _trusted()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
