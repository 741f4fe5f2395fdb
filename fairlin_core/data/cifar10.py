"""``cifar10``: the CIFAR-10 python batches from local files, made imbalanced (paper protocol).

Layout: ``<data_root>/cifar-10-batches-py/`` holding ``data_batch_1`` .. ``data_batch_5`` and
``test_batch`` (each a pickled dict with b'data' uint8 (N, 3072) in channel-major RGB order and
b'labels' (N,) in 0..9), plus optional ``batches.meta`` (b'label_names').

The batches are pickles, so they are read with :class:`SafeUnpickler`, which only admits the few
numpy/codecs globals these files reference, each checked before it builds anything: arrays must be uint8 with a
declared size equal to the bytes the file holds for them (an object array or a shape of 250M entries from a
150-byte file is refused before allocation), dtypes integers, codecs latin-1. Anything else (e.g. ``os.system``)
is refused, and a batch file is read whole (a regular file of at most :data:`MAX_BATCH_BYTES`) before it is
unpickled.

Protocol (seeded): train (50,000) and test (10,000) are subsampled per class, keeping
``major_fraction`` of classes 0-4 and ``minor_fraction`` of classes 5-9; ``val`` is carved
(stratified) from the imbalanced train; ``balanced`` is the full test batch.
x: float32 (N, 3, 32, 32), pixels / 255 normalised with the standard CIFAR-10 per-channel
``mean`` (0.4914, 0.4822, 0.4465) and ``std`` (0.2470, 0.2435, 0.2616).
"""

from __future__ import annotations

import codecs
import io
import math
import numbers
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fairlin_core.data import protocol
from fairlin_core.data.bundle import DatasetBundle, DatasetOutline
from fairlin_core.errors import DatasetError, brief
from fairlin_core.inputs import read_limited

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

MAX_BATCH_BYTES = 64 * 1024 * 1024  # a real batch is 31 MB (10,000 rows of 3,072 bytes)


def _refuse(what: str) -> DatasetError:
    return DatasetError(f"refusing {what}: a CIFAR-10 batch holds uint8 arrays, integer label lists and text")


def _check_array(dtype: Any, shape: Any, size: int) -> None:
    """An array's declaration before numpy allocates it: dtype uint8, a shape of at most 2 non-negative integers
    whose product is ``size``, the bytes the file holds for it (so the array fits the file)."""
    if not isinstance(dtype, np.dtype) or dtype != np.uint8:
        raise _refuse(f"an array of dtype {brief(str(dtype))}")
    if not (isinstance(shape, tuple) and len(shape) <= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise _refuse(f"an array of shape {brief(shape)}")
    if math.prod(shape) != size:
        raise _refuse(f"an array of shape {brief(shape)} ({math.prod(shape):,} bytes) from {size:,} bytes of data")


class _CheckedArray(np.ndarray):
    """What :func:`_reconstruct` returns: the pickle's BUILD step (``__setstate__``) is checked first."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _refuse("an array state that is not numpy's")
        shape, dtype, _, raw = state[-4:]
        if not isinstance(raw, bytes):
            raise _refuse(f"array data given as {type(raw).__name__}")
        _check_array(dtype, tuple(shape) if isinstance(shape, (tuple, list)) else shape, len(raw))
        super().__setstate__(state)


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` as pickles call it (an empty placeholder the BUILD step fills), nothing else."""
    if subtype is not np.ndarray or tuple(shape) != (0,) or typecode not in (b"b", "b"):
        raise _refuse(f"an array placeholder of shape {brief(shape)}")
    return _CheckedArray((0,), np.int8)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """numpy's ``_frombuffer`` (pickle protocol 5) once the declaration is checked."""
    _check_array(dtype, tuple(shape) if isinstance(shape, (tuple, list)) else shape, memoryview(buffer).nbytes)
    return _numeric._frombuffer(buffer, dtype, shape, order)


def _dtype(spec: Any, *args: Any) -> np.dtype:
    """``numpy.dtype`` for the integer types only (uint8 pixels, integer scalars): no object dtype."""
    dtype = np.dtype(spec.decode("latin-1") if isinstance(spec, bytes) else spec, *args)
    if dtype.kind not in "iu" or dtype.fields is not None or dtype.subdtype is not None:
        raise _refuse(f"dtype {brief(str(dtype))}")
    return dtype


def _scalar(dtype: Any, data: Any) -> Any:
    """A numpy scalar of an integer dtype (:func:`_dtype`) from its bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iu" or not isinstance(data, bytes):
        raise _refuse(f"a scalar of dtype {brief(str(dtype))}")
    return _multiarray.scalar(dtype, data)


def _encode(text: Any, encoding: Any = "utf-8", errors: str = "strict") -> bytes:
    """``codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _refuse(f"codecs.encode with {brief(encoding)}")
    return codecs.encode(text, "latin-1", errors)


_GLOBALS = {"_reconstruct": _reconstruct, "scalar": _scalar, "_frombuffer": _frombuffer, "ndarray": np.ndarray,
            "dtype": _dtype, "encode": _encode}
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("codecs", "encode"),
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy array/dtype and codecs globals CIFAR batches use, each in the checked
    form above."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DatasetError(f"refusing to unpickle {module}.{name}: a CIFAR-10 batch may only reference "
                               "numpy arrays/dtypes and codecs.encode")
        return _GLOBALS[name]


def read_pickle(path: Path) -> Any:
    """Unpickle ``path`` (read whole first, :data:`MAX_BATCH_BYTES` at most) with :class:`SafeUnpickler` (bytes
    keys kept as bytes)."""
    data = read_limited(path, MAX_BATCH_BYTES, "CIFAR-10 batch", DatasetError)
    try:
        return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
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
    if isinstance(data, np.ndarray):
        data = np.asarray(data)  # a plain ndarray (the unpickler builds a checked subclass)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW:
        shape = getattr(data, "shape", None)
        raise DatasetError(f"{path}: b'data' must be a uint8 array of shape (N, {ROW}), got {type(data).__name__} "
                           f"with shape {shape} and dtype {getattr(data, 'dtype', None)}")
    if not isinstance(labels, list) or len(labels) != data.shape[0] \
            or not all(isinstance(n, numbers.Integral) and 0 <= n <= 9 for n in labels):
        found = f"a list of {len(labels)}" if isinstance(labels, list) else type(labels).__name__
        raise DatasetError(f"{path}: b'labels' must be a list of {data.shape[0]} integers in 0..9 (one per row of "
                           f"b'data'), got {found}")
    return data.reshape(-1, 3, 32, 32), np.array(labels, dtype=np.int64)


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


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with their fractions and per-channel statistics checked (DatasetError otherwise)."""
    opts = dict(options)
    opts["val_fraction"] = protocol.check_fraction("val_fraction", opts["val_fraction"], include_high=False)
    for name in ("major_fraction", "minor_fraction"):
        opts[name] = protocol.check_fraction(name, opts[name])
    opts["mean"] = protocol.check_channels("mean", opts["mean"], 3)
    opts["std"] = protocol.check_channels("std", opts["std"], 3, positive=True)
    return opts


def outline(seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetOutline:
    """What the dataset is without its files: input (3, 32, 32), the standard class names (``batches.meta`` is
    among the absent files), groups = the classes."""
    opts = _checked(options)
    return DatasetOutline("cifar10", (3, 32, 32), list(STANDARD_NAMES), list(STANDARD_NAMES), target, group,
                          options={"seed": seed, "target": target, "group": group, **opts})


def load(data_root: Path, seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetBundle:
    """Read the batches under ``data_root`` and apply the imbalance protocol."""
    opts = _checked(options)
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
