"""Synthetic CIFAR-10 in the real ``cifar-10-batches-py`` layout (shared by the benchmark scripts).

Five training batches and one test batch, each a pickled dict with ``b"data"`` (uint8, (N, 3072)) and
``b"labels"`` (N ints in 0..9), plus ``batches.meta`` - what ``fairlin_core.data.cifar10`` reads.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from fairlin_core.data.cifar10 import FOLDER, META_FILE, STANDARD_NAMES, TEST_FILE, TRAIN_FILES


def write_cifar_layout(data_root: Path, train: int = 50_000, test: int = 10_000, seed: int = 0) -> Path:
    """Write ``data_root/cifar-10-batches-py`` with ``train`` images over 5 batches and ``test`` in test_batch."""
    folder = Path(data_root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [train // 5 + (1 if i < train % 5 else 0) for i in range(5)]
    for name, n in [*zip(TRAIN_FILES, sizes), (TEST_FILE, test)]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / META_FILE, "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in STANDARD_NAMES], b"num_vis": 3072}, handle, protocol=2)
    return folder
