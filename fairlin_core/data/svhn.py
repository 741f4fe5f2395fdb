"""``svhn``: Street View House Numbers (cropped digits) from the local ``.mat`` files.

Layout: ``<data_root>/train_32x32.mat`` and ``<data_root>/test_32x32.mat`` (format 2 of
http://ufldl.stanford.edu/housenumbers/): ``X`` uint8 (32, 32, 3, N), ``y`` (N, 1) with labels
1..10 where 10 stands for digit 0 (mapped to 0 here).

Protocol: no subsampling (SVHN is naturally imbalanced: about 19% ones, 6% nines); ``val`` is
carved (stratified, seeded) from train; test is the test file; no ``balanced`` split.
x: float32 (N, 3, 32, 32), pixels / 255 normalised with per-channel ``mean``
(0.4377, 0.4438, 0.4728) and ``std`` (0.1980, 0.2010, 0.1970), the SVHN train-set statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.io

from fairlin_core.data import protocol
from fairlin_core.data.bundle import DatasetBundle, DatasetOutline
from fairlin_core.errors import DatasetError, brief
from fairlin_core.inputs import open_regular

ATTRIBUTES = ("digit",)
DEFAULT_TARGET = DEFAULT_GROUP = "digit"
DEFAULTS: dict[str, Any] = {"val_fraction": 0.1, "mean": (0.4377, 0.4438, 0.4728), "std": (0.1980, 0.2010, 0.1970)}
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
MAX_MAT_BYTES = 512 * 1024 * 1024  # the real files are 182 MB (train) and 64 MB (test)
LAYOUT = ("<data_root>/train_32x32.mat and <data_root>/test_32x32.mat (SVHN format 2, cropped digits, "
          "X uint8 (32, 32, 3, N) and y (N, 1) in 1..10)")
CLASS_NAMES = [str(d) for d in range(10)]


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN file (a regular file of at most :data:`MAX_MAT_BYTES`) as (images uint8 (N, 3, 32, 32), labels
    int64 (N,) in 0..9), validated."""
    with open_regular(path, MAX_MAT_BYTES, "SVHN file", DatasetError) as handle:
        try:
            mat = scipy.io.loadmat(handle, variable_names=["X", "y"])
        except Exception as error:  # scipy raises ValueError, TypeError, OSError, ... on a bad file
            raise DatasetError(f"{path} is not a readable MATLAB file ({type(error).__name__}); expected "
                               f"{LAYOUT}") from None
        x, y = mat.get("X"), mat.get("y")
        if x is None or y is None:
            raise DatasetError(f"{path}: expected variables 'X' and 'y', found {_variables(handle)}")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DatasetError(f"{path}: 'X' must be uint8 of shape (32, 32, 3, N), got {x.dtype} {x.shape}")
    labels = np.asarray(y).reshape(-1)
    if labels.shape != (x.shape[3],) or not np.issubdtype(labels.dtype, np.number) \
            or not np.isin(labels, np.arange(11)).all():
        raise DatasetError(f"{path}: 'y' must hold {x.shape[3]} labels in 1..10 (10 = digit 0), shape (N, 1); "
                           f"got {y.dtype} {y.shape}")
    labels = labels.astype(np.int64) % 10
    return x.transpose(3, 2, 0, 1), labels


def _variables(handle: BinaryIO) -> str:
    """The names (and shapes) of the variables the open .mat file holds, read from its headers only."""
    try:
        handle.seek(0)
        found = scipy.io.whosmat(handle)
    except Exception:  # already read once; a file scipy cannot list has no names to show
        return "none"
    return brief(", ".join(f"{name} {tuple(shape)}" for name, shape, _ in found) or "none", 200)


def missing(data_root: Path, options: Mapping[str, Any]) -> str:
    """Cheap check: "" when both ``.mat`` files exist, else "missing <path>"."""
    for name in FILES.values():
        if not (data_root / name).is_file():
            return f"missing {data_root / name}"
    return ""


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with the validation fraction and per-channel statistics checked (DatasetError otherwise)."""
    opts = dict(options)
    opts["val_fraction"] = protocol.check_fraction("val_fraction", opts["val_fraction"], include_high=False)
    opts["mean"] = protocol.check_channels("mean", opts["mean"], 3)
    opts["std"] = protocol.check_channels("std", opts["std"], 3, positive=True)
    return opts


def outline(seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetOutline:
    """What the dataset is without its files: input (3, 32, 32), its classes, groups = the digits."""
    opts = _checked(options)
    return DatasetOutline("svhn", (3, 32, 32), list(CLASS_NAMES), list(CLASS_NAMES), target, group,
                          options={"seed": seed, "target": target, "group": group, **opts})


def load(data_root: Path, seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetBundle:
    """Read both files, carve validation from train."""
    opts = _checked(options)
    gap = missing(data_root, opts)
    if gap:
        raise DatasetError(f"cannot load SVHN: {gap}; expected {LAYOUT}")
    train_x, train_y = read_mat(data_root / FILES["train"])
    test_x, test_y = read_mat(data_root / FILES["test"])
    keep, val = protocol.carve_validation(train_y, opts["val_fraction"], np.random.default_rng(seed))
    sources = {"train": (train_x, train_y, keep), "val": (train_x, train_y, val),
               "test": (test_x, test_y, np.arange(len(test_y)))}
    splits = {name: protocol.image_split(x, 255.0, opts["mean"], opts["std"], y, y, pos)
              for name, (x, y, pos) in sources.items()}
    return DatasetBundle("svhn", splits, list(CLASS_NAMES), list(CLASS_NAMES), target, group,
                         options={"seed": seed, "target": target, "group": group, **opts})
