"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images), made imbalanced.

Protocol (seeded): a stratified held-out test portion (``test_fraction``) is cut first; train and
test are then subsampled per class, keeping ``major_fraction`` of digits 0-4 and
``minor_fraction`` of digits 5-9; ``val`` is carved (stratified) from the imbalanced train.
``balanced`` is the whole held-out portion before subsampling.

x: float32 (N, 1, 8, 8), pixel intensity / 16 (so in [0, 1]) normalised with ``mean``/``std``;
the defaults 0.3053 / 0.3760 are the intensity mean and std of the whole dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairlin_core.data import protocol
from fairlin_core.data.bundle import DatasetBundle

ATTRIBUTES = ("digit",)
DEFAULT_TARGET = DEFAULT_GROUP = "digit"
DEFAULTS: dict[str, Any] = {"test_fraction": 0.3, "major_fraction": 0.9, "minor_fraction": 0.2,
                            "val_fraction": 0.15, "mean": (0.3053,), "std": (0.3760,)}
CLASS_NAMES = [str(d) for d in range(10)]


def load(data_root: Path, seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetBundle:
    """Load digits with the imbalance protocol; ``data_root`` is unused (the data ships with sklearn)."""
    opts = dict(options)
    for name in ("test_fraction", "val_fraction"):
        opts[name] = protocol.check_fraction(name, opts[name], include_high=False)
    for name in ("major_fraction", "minor_fraction"):
        opts[name] = protocol.check_fraction(name, opts[name])
    opts["mean"] = protocol.check_channels("mean", opts["mean"], 1)
    opts["std"] = protocol.check_channels("std", opts["std"], 1, positive=True)

    from sklearn.datasets import load_digits  # seconds to import; only when digits are loaded
    raw = load_digits()
    images = raw.images.reshape(-1, 1, 8, 8)
    labels = raw.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train_all, test_all = protocol.stratified_partition(labels, [1 - opts["test_fraction"], opts["test_fraction"]], rng)
    keep = protocol.major_minor_fractions(10, opts["major_fraction"], opts["minor_fraction"])
    index = protocol.imbalanced_splits(labels[train_all], labels[test_all], keep, opts["val_fraction"], rng)
    positions = {"train": train_all[index["train"]], "val": train_all[index["val"]],
                 "test": test_all[index["test"]], "balanced": test_all}
    splits = {name: protocol.image_split(images, 16.0, opts["mean"], opts["std"], labels, labels, pos)
              for name, pos in positions.items()}
    return DatasetBundle("digits", splits, list(CLASS_NAMES), list(CLASS_NAMES), target, group,
                         options={"seed": seed, "target": target, "group": group, **opts})
