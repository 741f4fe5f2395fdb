"""Seeded split protocol shared by every loader, plus the small conversions they all need.

Everything random takes a ``numpy.random.Generator``; a loader makes one with
``np.random.default_rng(seed)`` and passes it through its steps in a fixed order, so a seed fixes
every split. Index arrays returned here are int64 and sorted (the original order of the data).

Stratification works class by class (or stratum by stratum): each class is shuffled on its own
and cut by rounded fractions. A class too small to reach every part keeps its members in the first
part (train), so tiny classes never crash and are never absent from training.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fairlin_core.data.bundle import Split
from fairlin_core.errors import DatasetError, brief
from fairlin_core.inputs import open_regular
from fairlin_core.limits import Interval, check_real


# ----------------------------------------------------------------------------- seeded splitting

def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Member counts per part for a class of ``n``: parts after the first get ``round(n * f)``,
    the first gets the rest and at least one member whenever ``n >= 1``."""
    later = [math.floor(n * f + 0.5) for f in fractions[1:]]
    while n - sum(later) < min(n, 1):
        later[int(np.argmax(later))] -= 1
    return [n - sum(later), *later]


def stratified_partition(strata: np.ndarray, fractions: Sequence[float],
                         rng: np.random.Generator) -> list[np.ndarray]:
    """Cut indices ``0..N-1`` into ``len(fractions)`` parts with the same per-stratum proportions.

    strata: (N,) integer labels (a class, or a combined target x group code).
    fractions: one fraction per part, summing to 1; the first part is the training side.
    Returns one sorted int64 index array per part; together they cover every index once.
    """
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must sum to 1, got {list(fractions)}")
    strata = np.asarray(strata)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for value in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == value))
        start = 0
        for part, count in zip(parts, _allocate(len(members), fractions)):
            part.append(members[start:start + count])
            start += count
    return [np.sort(np.concatenate(part)).astype(np.int64) if part else np.empty(0, np.int64)
            for part in parts]


def carve_validation(strata: np.ndarray, val_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split a training set into (train, val) positions, stratified; val gets ``val_fraction``."""
    train, val = stratified_partition(strata, [1.0 - val_fraction, val_fraction], rng)
    return train, val


def subsample_classes(labels: np.ndarray, keep_fraction: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Keep ``round(n_c * keep_fraction[c])`` random members of each class ``c`` (at least one).

    labels: (N,) class indices; keep_fraction: (num_classes,) fractions in (0, 1].
    Returns the sorted int64 positions kept.
    """
    kept = []
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        count = max(1, math.floor(len(members) * float(keep_fraction[value]) + 0.5))
        kept.append(members[:count])
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else np.empty(0, np.int64)


def holdout_splits(strata: np.ndarray, test_fraction: float, val_fraction: float,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stratified train/test cut, then validation carved (stratified) from train.

    Returns {"train", "val", "test"} -> sorted int64 positions into ``strata``.
    """
    train, test = stratified_partition(strata, [1.0 - test_fraction, test_fraction], rng)
    keep, val = carve_validation(strata[train], val_fraction, rng)
    return {"train": train[keep], "val": train[val], "test": test}


def imbalanced_splits(train_labels: np.ndarray, test_labels: np.ndarray, keep_fraction: np.ndarray,
                      val_fraction: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The imbalance protocol: subsample train and test per class, carve val from imbalanced train.

    Returns {"train", "val"} -> positions into ``train_labels`` and {"test"} -> positions into
    ``test_labels``; the ``balanced`` split is the whole test side, so it needs no indices.
    """
    train = subsample_classes(train_labels, keep_fraction, rng)
    test = subsample_classes(test_labels, keep_fraction, rng)
    keep, val = carve_validation(train_labels[train], val_fraction, rng)
    return {"train": train[keep], "val": train[val], "test": test}


def major_minor_fractions(num_classes: int, major: float, minor: float, num_major: int = 5) -> np.ndarray:
    """Keep fraction per class: ``major`` for classes ``0..num_major-1``, ``minor`` for the rest."""
    return np.where(np.arange(num_classes) < num_major, major, minor).astype(np.float64)


# ----------------------------------------------------------------------------- option checks

def check_fraction(name: str, value: Any, *, low: float = 0.0, high: float = 1.0,
                   include_low: bool = False, include_high: bool = True) -> float:
    """``value`` as a finite float inside the interval, else DatasetError naming the interval."""
    return check_real(value, name, Interval(low, high, low_open=not include_low, high_open=not include_high),
                      DatasetError)


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, else DatasetError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise DatasetError(f"{name} must be an integer >= {minimum}, got {brief(value)}")
    return int(value)


def check_channels(name: str, value: Any, channels: int, *, positive: bool = False) -> list[float]:
    """Per-channel constants (``mean`` or ``std``) as a list of ``channels`` floats."""
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != channels or not all(math.isfinite(v) and (v > 0 or not positive) for v in numbers):
        sign = "positive " if positive else ""
        raise DatasetError(f"{name} must be a list of {channels} {sign}finite numbers (one per channel), "
                           f"got {brief(value)}")
    return numbers


# ----------------------------------------------------------------------------- tensors and images

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # one image file
GATHER_CHUNK = 4096  # images converted at a time: the only extra memory beside the float32 result


def take_rows(images: np.ndarray | Sequence[np.ndarray], index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of ``images``: one array (N, ...), or blocks (N_i, ...) that stack along axis 0 to
    one (so batch files need no concatenated copy). Returns a new contiguous array (len(index), ...)."""
    if isinstance(images, np.ndarray):
        return np.ascontiguousarray(images[index])
    offsets = np.cumsum([0, *(len(block) for block in images)])
    which = np.searchsorted(offsets, index, side="right") - 1
    rows = np.empty((len(index), *images[0].shape[1:]), dtype=images[0].dtype)
    for number, block in enumerate(images):
        chosen = which == number
        if chosen.any():
            rows[chosen] = block[index[chosen] - offsets[number]]
    return rows


def image_split(images: np.ndarray | Sequence[np.ndarray], scale: float, mean: Sequence[float],
                std: Sequence[float], y: np.ndarray, group: np.ndarray, index: np.ndarray | None = None) -> Split:
    """Split from raw images (N, C, H, W) in units of ``scale`` (255 for uint8, 16 for digits), the rows
    ``index`` (all when None) of ``images``, ``y`` and ``group``; ``images`` may also be blocks that stack
    to (N, C, H, W) (see :func:`take_rows`).

    x = (images / scale - mean[c]) / std[c] as float32; y and group become int64. The rows are gathered and
    converted ``GATHER_CHUNK`` at a time straight into the result, so no full-size copy of the selected
    images (uint8 or float) is ever made besides the float32 result.
    """
    total = len(images) if isinstance(images, np.ndarray) else sum(len(block) for block in images)
    shape = images.shape[1:] if isinstance(images, np.ndarray) else images[0].shape[1:]
    index = np.arange(total) if index is None else np.asarray(index)
    x = torch.empty((len(index), *shape), dtype=torch.float32)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    for start in range(0, len(index), GATHER_CHUNK):
        part = x[start:start + GATHER_CHUNK]
        part.copy_(torch.from_numpy(take_rows(images, index[start:start + GATHER_CHUNK])))
        part.div_(scale).sub_(mean_t).div_(std_t)
    return Split(x, torch.as_tensor(np.asarray(y)[index], dtype=torch.int64),
                 torch.as_tensor(np.asarray(group)[index], dtype=torch.int64))


def holdout_image_splits(images: np.ndarray, y: np.ndarray, group: np.ndarray, num_groups: int,
                         options: dict[str, Any], rng: np.random.Generator) -> dict[str, Split]:
    """The holdout protocol for uint8 images (N, 3, H, W): stratified by target x group, a
    ``test_fraction`` test cut, ``val_fraction`` of train carved as val, pixels / 255 normalised
    with ``options["mean"]`` / ``options["std"]``."""
    strata = y * num_groups + group
    index = holdout_splits(strata, options["test_fraction"], options["val_fraction"], rng)
    return {name: image_split(images, 255.0, options["mean"], options["std"], y, group, pos)
            for name, pos in index.items()}


def check_image_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validated copy of the options of an image-folder loader: image_size, test/val fractions,
    3-channel mean/std."""
    opts = dict(options)
    opts["image_size"] = check_int("image_size", opts["image_size"], minimum=1)
    for name in ("test_fraction", "val_fraction"):
        opts[name] = check_fraction(name, opts[name], include_high=False)
    opts["mean"] = check_channels("mean", opts["mean"], 3)
    opts["std"] = check_channels("std", opts["std"], 3, positive=True)
    return opts


def read_rgb(path: Path, size: int) -> np.ndarray | None:
    """An image file as uint8 (3, size, size), RGB, bilinear resize; None if it cannot be read (also when it is
    no regular file or larger than :data:`MAX_IMAGE_BYTES`: :func:`~fairlin_core.inputs.open_regular`)."""
    try:
        with open_regular(path, MAX_IMAGE_BYTES, "image", DatasetError) as handle, Image.open(handle) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (DatasetError, OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def read_images(paths: Sequence[Path], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read every path with :func:`read_rgb`.

    Returns (images uint8 (M, 3, size, size) of the readable files, in order; bool (len(paths),)
    mask of which paths were readable).
    """
    arrays = [read_rgb(path, size) for path in paths]
    readable = np.array([a is not None for a in arrays], dtype=bool)
    kept = [a for a in arrays if a is not None]
    images = np.stack(kept) if kept else np.empty((0, 3, size, size), np.uint8)
    return images, readable


def sorted_names(values: Sequence[str]) -> list[str]:
    """Unique values as names, sorted numerically when they all read as integers, else as text."""
    unique = set(values)
    try:
        return [str(v) for v in sorted(unique, key=int)]
    except ValueError:
        return sorted(unique)
