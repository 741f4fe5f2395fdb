"""``cifar10``: the CIFAR-10 python batches from local files, made imbalanced (paper protocol).

Layout: ``<data_root>/cifar-10-batches-py/`` holding ``data_batch_1`` .. ``data_batch_5`` and
``test_batch`` (each a pickled dict with b'data' uint8 (N, 3072) in channel-major RGB order and
b'labels' (N,) in 0..9), plus optional ``batches.meta`` (b'label_names').

The batches are pickles, so they are read with :class:`SafeUnpickler`, which only admits the few
numpy/codecs globals these files reference; anything else (e.g. ``os.system``) is refused.

Protocol (seeded): train (50,000) and test (10,000) are subsampled per class, keeping
``major_fraction`` of classes 0-4 and ``minor_fraction`` of classes 5-9; ``val`` is carved
(stratified) from the imbalanced train; ``balanced`` is the full test batch.
x: float32 (N, 3, 32, 32), pixels / 255 normalised with the standard CIFAR-10 per-channel
``mean`` (0.4914, 0.4822, 0.4465) and ``std`` (0.2470, 0.2435, 0.2616).
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fairlin_core.data import protocol
from fairlin_core.data.bundle import DatasetBundle
from fairlin_core.errors import DatasetError, brief

try:
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray, numeric as _numeric

ATTRIBUTES = ("label",)
DEFAULT_TARGET = DEFAULT_GROUP = "label"
DEFAULTS: dict[str, Any] = {"major_fraction": 0.9, "minor_fraction": 0.1, "val_fraction": 0.1,
                            "mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616)}
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
LAYOUT = (f"<data_root>/{FOLDER}/ with {', '.join(TRAIN_FILES)}, {TEST_FILE} (and optional {META_FILE}), "
          "the CIFAR-10 'python version' from https://www.cs.toronto.edu/~kriz/cifar.html")
STANDARD_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ROW = 3 * 32 * 32

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    ("codecs", "encode"): codecs.encode,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy array/dtype and codecs globals CIFAR batches use."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(f"refusing to unpickle {module}.{name}: a CIFAR-10 batch may only reference "
                               "numpy arrays/dtypes and codecs.encode") from None


def read_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler` (bytes keys kept as bytes)."""
    try:
        with open(path, "rb") as handle:
            return SafeUnpickler(handle, encoding="bytes").load()
    except DatasetError as error:
        raise DatasetError(f"{path}: {error}") from None
    except Exception as error:  # a corrupt pickle can raise almost anything; report it as bad input
        raise DatasetError(f"{path} is not a readable CIFAR-10 batch pickle ({type(error).__name__}); "
                           f"expected {LAYOUT}") from None


def _field(batch: dict, key: str) -> Any:
    return batch.get(key.encode(), batch.get(key))


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (images uint8 (N, 3, 32, 32), labels int64 (N,)), validated."""
    batch = read_pickle(path)
    data = _field(batch, "data") if isinstance(batch, dict) else None
    labels = _field(batch, "labels") if isinstance(batch, dict) else None
    if data is None or labels is None:
        found = brief(sorted(map(repr, batch))) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetError(f"{path}: expected a dict with keys b'data' and b'labels', found {found}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW:
        shape = getattr(data, "shape", None)
        raise DatasetError(f"{path}: b'data' must be a uint8 array of shape (N, {ROW}), got {type(data).__name__} "
                           f"with shape {shape} and dtype {getattr(data, 'dtype', None)}")
    labels = np.asarray(labels)
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer) \
            or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DatasetError(f"{path}: b'labels' must hold {data.shape[0]} integers in 0..9 (one per row of "
                           f"b'data'), got shape {labels.shape} and dtype {labels.dtype}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_class_names(folder: Path) -> list[str]:
    """Label names from ``batches.meta`` when present (10 names), else the standard names."""
    path = folder / META_FILE
    if not path.is_file():
        return list(STANDARD_NAMES)
    meta = read_pickle(path)
    names = _field(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != 10:
        raise DatasetError(f"{path}: expected a dict whose b'label_names' lists 10 class names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def missing(data_root: Path, options: Mapping[str, Any]) -> str:
    """Cheap check: "" when the five train batches and the test batch exist, else "missing <path>"."""
    for name in (*TRAIN_FILES, TEST_FILE):
        if not (data_root / FOLDER / name).is_file():
            return f"missing {data_root / FOLDER / name}"
    return ""


def load(data_root: Path, seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetBundle:
    """Read the batches under ``data_root`` and apply the imbalance protocol."""
    opts = dict(options)
    opts["val_fraction"] = protocol.check_fraction("val_fraction", opts["val_fraction"], include_high=False)
    for name in ("major_fraction", "minor_fraction"):
        opts[name] = protocol.check_fraction(name, opts[name])
    opts["mean"] = protocol.check_channels("mean", opts["mean"], 3)
    opts["std"] = protocol.check_channels("std", opts["std"], 3, positive=True)
    gap = missing(data_root, opts)
    if gap:
        raise DatasetError(f"cannot load CIFAR-10: {gap}; expected {LAYOUT}")

    folder = data_root / FOLDER
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    train_x = [images for images, _ in train]  # gathered from the batches as they are: no concatenated copy
    train_y = np.concatenate([labels for _, labels in train])
    del train
    test_x, test_y = read_batch(folder / TEST_FILE)
    class_names = read_class_names(folder)

    keep = protocol.major_minor_fractions(10, opts["major_fraction"], opts["minor_fraction"])
    index = protocol.imbalanced_splits(train_y, test_y, keep, opts["val_fraction"], np.random.default_rng(seed))

    def split(x: np.ndarray | list[np.ndarray], y: np.ndarray, pos: np.ndarray | None):
        return protocol.image_split(x, 255.0, opts["mean"], opts["std"], y, y, pos)
    splits = {"train": split(train_x, train_y, index["train"]), "val": split(train_x, train_y, index["val"])}
    del train_x  # uint8 train batches are freed before the test splits are converted
    splits.update(test=split(test_x, test_y, index["test"]), balanced=split(test_x, test_y, None))
    return DatasetBundle("cifar10", splits, class_names, list(class_names), target, group,
                         options={"seed": seed, "target": target, "group": group, **opts})
