"""``toy2d``: synthetic 2D majority/minority problems for teaching (the paper's Figure 2 and foils).

Shapes (class 0 = majority, class 1 = minority; x is float32 (N, 2), raw coordinates, no scaling):

- ``paper`` (default): points uniform on [-1, 1]^2; minority = inside the circle of radius 0.6 at
  the origin AND outside the circle of radius 0.55 centred at (0.25, 0): a crescent, about 1:9.5.
- ``disk``: points uniform on [-1, 1]^2; minority = inside the disk of radius 0.3 at the origin
  (a convex minority; the counter-example where linearization costs the minority little).
- ``xor``: points uniform in the four quadrants of [-1, 1]^2; minority = first and third quadrants.
- ``moons``: two interleaving half circles; minority = the lower moon.
- ``circles``: two concentric circles (radius 1 and 0.5); minority = the inner circle.
- ``spiral``: two interleaved spiral arms inside [-1, 1]^2; minority = the second arm.

``n`` is the total number of points before splitting. ``noise`` is a label-flip fraction for
paper/disk/xor (that share of points, chosen at random, gets the other label) and a Gaussian
coordinate-noise standard deviation for moons/circles/spiral. For xor/moons/circles/spiral the
minority size is set by ``minority_ratio`` (minority points per majority point, as if a balanced
set had its minority subsampled to that fraction); paper/disk have their minority set by area.
Defaults: ``n`` 2000; ``noise`` None = per shape (0 for paper/disk/xor, std 0.1 for moons,
0.05 for circles/spiral); ``minority_ratio`` None = 0.1 for the ratio shapes, unused otherwise.
Splits: stratified 60% train / 20% val / 20% test, seeded; no ``balanced`` split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairlin_core.data import protocol
from fairlin_core.data.bundle import DatasetBundle, Split
from fairlin_core.errors import DatasetError, brief

ATTRIBUTES = ("class",)
DEFAULT_TARGET = DEFAULT_GROUP = "class"
DEFAULTS: dict[str, Any] = {"shape": "paper", "n": 2000, "noise": None, "minority_ratio": None}
CLASS_NAMES = ["majority", "minority"]
AREA_SHAPES = ("paper", "disk")
RATIO_SHAPES = ("xor", "moons", "circles", "spiral")
LABEL_NOISE_SHAPES = ("paper", "disk", "xor")
SHAPES = AREA_SHAPES + RATIO_SHAPES
DEFAULT_NOISE = {"paper": 0.0, "disk": 0.0, "xor": 0.0, "moons": 0.1, "circles": 0.05, "spiral": 0.05}
DEFAULT_MINORITY_RATIO = 0.1
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def crescent(points: np.ndarray) -> np.ndarray:
    """Bool (N,): the ``paper`` minority rule for points (N, 2)."""
    inside = np.hypot(points[:, 0], points[:, 1]) < 0.6
    outside_bite = np.hypot(points[:, 0] - 0.25, points[:, 1]) > 0.55
    return inside & outside_bite


def _by_area(shape: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    points = rng.uniform(-1.0, 1.0, size=(n, 2))
    minority = crescent(points) if shape == "paper" else np.hypot(points[:, 0], points[:, 1]) < 0.3
    return points, minority.astype(np.int64)


def _class_points(shape: str, label: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` noise-free points of one class of a ratio shape, (count, 2)."""
    if shape == "xor":
        corner = rng.uniform(0.0, 1.0, size=(count, 2))
        signs = rng.choice([-1.0, 1.0], size=count)
        return corner * np.stack([signs, signs if label == 1 else -signs], axis=1)
    if shape == "moons":
        t = rng.uniform(0.0, np.pi, size=count)
        if label == 0:
            return np.stack([np.cos(t), np.sin(t)], axis=1)
        return np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    if shape == "circles":
        t = rng.uniform(0.0, 2 * np.pi, size=count)
        radius = 1.0 if label == 0 else 0.5
        return radius * np.stack([np.cos(t), np.sin(t)], axis=1)
    t = np.sqrt(rng.uniform(0.0, 1.0, size=count))  # spiral: denser towards the tips
    angle = 3 * np.pi * t + np.pi * label
    radius = 0.1 + 0.9 * t
    return radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _by_ratio(shape: str, n: int, ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_minor = max(1, round(n * ratio / (1.0 + ratio)))
    n_major = n - n_minor
    points = np.concatenate([_class_points(shape, 0, n_major, rng), _class_points(shape, 1, n_minor, rng)])
    labels = np.repeat(np.array([0, 1], dtype=np.int64), [n_major, n_minor])
    order = rng.permutation(n)
    return points[order], labels[order]


def _resolve(options: dict[str, Any]) -> dict[str, Any]:
    opts = dict(options)
    shape = opts["shape"]
    if shape not in SHAPES:
        raise DatasetError(f"toy2d shape must be one of {', '.join(SHAPES)}; got {brief(shape)}")
    opts["n"] = protocol.check_int("n", opts["n"], minimum=10)
    if opts["noise"] is None:
        opts["noise"] = DEFAULT_NOISE[shape]
    elif shape in LABEL_NOISE_SHAPES:
        opts["noise"] = protocol.check_fraction("noise", opts["noise"], high=0.5, include_low=True)
    else:
        opts["noise"] = protocol.check_fraction("noise", opts["noise"], high=float("inf"), include_low=True,
                                                include_high=False)
    if shape in AREA_SHAPES:
        if opts["minority_ratio"] is not None:
            raise DatasetError(f"minority_ratio applies only to shapes {', '.join(RATIO_SHAPES)}; "
                               f"the {brief(shape)} minority is set by its area, so leave minority_ratio unset")
    elif opts["minority_ratio"] is None:
        opts["minority_ratio"] = DEFAULT_MINORITY_RATIO
    else:
        opts["minority_ratio"] = protocol.check_fraction("minority_ratio", opts["minority_ratio"])
    return opts


def load(data_root: Path, seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetBundle:
    """Generate the shape and split it; ``data_root`` is unused (synthetic data)."""
    opts = _resolve(options)
    shape, n, noise = opts["shape"], opts["n"], opts["noise"]
    rng = np.random.default_rng(seed)
    if shape in AREA_SHAPES:
        points, labels = _by_area(shape, n, rng)
    else:
        points, labels = _by_ratio(shape, n, opts["minority_ratio"], rng)
    if shape in LABEL_NOISE_SHAPES:
        flipped = rng.choice(n, size=round(noise * n), replace=False)
        labels[flipped] = 1 - labels[flipped]
    else:
        points = points + rng.normal(0.0, noise, size=points.shape)
    parts = protocol.stratified_partition(labels, list(SPLIT_FRACTIONS.values()), rng)
    x = torch.from_numpy(points.astype(np.float32))
    y = torch.from_numpy(labels)
    splits = {name: Split(x[pos], y[pos], y[pos]) for name, pos in zip(SPLIT_FRACTIONS, map(torch.from_numpy, parts))}
    return DatasetBundle("toy2d", splits, list(CLASS_NAMES), list(CLASS_NAMES), target, group,
                         options={"seed": seed, "target": target, "group": group, **opts})
