"""``folder``: your own images, listed in a CSV with a label, a group and any other attributes.

Layout: ``root`` (default ``<data_root>/folder``; a relative ``root`` is taken inside the data root)
holds the images and ``csv`` (default ``<root>/labels.csv``; a relative ``csv`` is taken inside
``root``). ``bundle.options`` records both relative where they are inside (``None`` for the
defaults), so a checkpoint's sidecar names no absolute path; paths read back from a sidecar must be
relative and stay inside the data root (see :func:`fairlin_core.data.load_dataset`); no path may hold a NUL
byte. The CSV (a regular file of at most 200,000 rows, :data:`MAX_ROWS`) has a header with at least the columns
``path,label,group``; ``path`` is relative to ``root`` and must stay inside it.
More columns are more attributes: any column except ``path`` can be the target or the group
(default target ``label``, group ``group``). Values may be text or integers; class and group names
are the sorted unique values (numerically when all are integers) of the rows loaded.

A row whose image file is missing or unreadable is skipped and counted in ``bundle.skipped``
(choose this over failing so that a partly synced folder still loads; check ``skipped``). A
missing column, an empty cell, a path leaving ``root`` or an unreadable CSV is a DatasetError whose
message never quotes the file's contents (it may be any file).

Protocol (seeded): as ``utkface``: stratified by target x group, 80/20 train/test
(``test_fraction``), ``val`` carved from train (``val_fraction``); no ``balanced`` split.
x: float32 (N, 3, S, S), RGB resized bilinearly to ``image_size`` S, normalised with ``mean`` =
``std`` = 0.5 per channel by default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairlin_core.data import protocol
from fairlin_core.data.bundle import DatasetBundle
from fairlin_core.errors import DatasetError, brief, clip
from fairlin_core.inputs import open_regular

ATTRIBUTES = None  # the CSV's columns other than path
DEFAULT_TARGET = "label"
DEFAULT_GROUP = "group"
DEFAULTS: dict[str, Any] = {"root": None, "csv": None, "image_size": 32, "test_fraction": 0.2, "val_fraction": 0.1,
                            "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
REQUIRED_COLUMNS = ("path", "label", "group")
MAX_ROWS = 200_000  # images one CSV may list (over three times CIFAR-10's 60,000)
MAX_CSV_BYTES = 256 * 1024 * 1024
PATH_OPTIONS = ("root", "csv")
LAYOUT = ("<root>/labels.csv with header columns path,label,group (more attribute columns allowed) and the "
          "images it lists, paths relative to <root> (default root <data_root>/folder)")


def resolve_paths(data_root: Path, options: Mapping[str, Any]) -> tuple[Path, Path]:
    """(root, csv) from the options: root defaults to ``<data_root>/folder`` (a relative root is inside the
    data root), csv to ``<root>/labels.csv`` (a relative csv is inside root)."""
    for name in PATH_OPTIONS:
        if not isinstance(options[name], (str, os.PathLike, type(None))):
            raise DatasetError(f"{name} must be a path (string), got {brief(options[name])}")
        if "\0" in os.fspath(options[name] or ""):
            raise DatasetError(f"dataset option {name} {brief(os.fspath(options[name]))} contains a NUL byte; expected "
                               f"a path")
    root = Path(options["root"]).expanduser() if options["root"] is not None else Path("folder")
    csv = Path(options["csv"]).expanduser() if options["csv"] is not None else Path("labels.csv")
    root = Path(os.path.normpath(data_root / root))  # an absolute root replaces data_root in the join
    return root, root / csv  # an absolute csv replaces root in the join


def option_paths(data_root: Path, options: Mapping[str, Any]) -> dict[str, Path]:
    """{"root", "csv"} -> the path each option names (for the registry's confinement check)."""
    root, csv = resolve_paths(data_root, options)
    return {"root": root, "csv": csv}


def _recorded(path: Path, inside: Path, default: str) -> str | None:
    """How ``bundle.options`` records a path: None for the default, relative to ``inside`` when in it."""
    if path == inside / default:
        return None
    return str(path.relative_to(inside)) if path.is_relative_to(inside) else str(path)


def missing(data_root: Path, options: Mapping[str, Any]) -> str:
    """Cheap check: "" when the CSV exists (its images are checked when loading), else "missing <csv>"."""
    csv = resolve_paths(data_root, options)[1]
    return "" if csv.is_file() else f"missing {csv}"


def read_table(csv: Path) -> pd.DataFrame:
    """The CSV as text columns, validated: a regular file of at most :data:`MAX_CSV_BYTES`, required columns
    present, from one to :data:`MAX_ROWS` rows (parsing stops after ``MAX_ROWS + 1``)."""
    if not csv.is_file():
        raise DatasetError(f"folder dataset CSV missing: {csv}; expected {LAYOUT}")
    with open_regular(csv, MAX_CSV_BYTES, "folder dataset CSV", DatasetError) as handle:
        try:
            table = pd.read_csv(handle, dtype=str, keep_default_na=False, skipinitialspace=True, nrows=MAX_ROWS + 1)
        except (ValueError, OSError, UnicodeDecodeError) as error:  # the reason only: pandas may quote the file
            raise DatasetError(f"{csv} is not a readable CSV ({type(error).__name__}); expected {LAYOUT}") from None
    if len(table) > MAX_ROWS:
        raise DatasetError(f"{csv} lists more than {MAX_ROWS:,} images; expected at most {MAX_ROWS:,} rows (one per "
                           f"image)")
    table.columns = [str(c).strip() for c in table.columns]
    absent = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if absent:  # the header is not echoed: the file may be anything
        raise DatasetError(f"{csv} lacks column(s) {', '.join(absent)} in its header ({len(table.columns)} "
                           f"columns found); required {', '.join(REQUIRED_COLUMNS)} (more attribute columns allowed)")
    if table.empty:
        raise DatasetError(f"{csv} has a header but no rows; expected one row per image")
    return table


def _check_attribute(role: str, name: str, table: pd.DataFrame, csv: Path) -> None:
    choices = [c for c in table.columns if c != "path"]
    if name not in choices:
        raise DatasetError(f"{role} {brief(name)} is not an attribute column of {csv}; choose one of "
                           f"{clip(', '.join(choices))}")
    empty = np.flatnonzero(table[name].str.strip().to_numpy() == "")
    if len(empty):
        raise DatasetError(f"{csv}: column {brief(name)} is empty on line(s) {', '.join(str(i + 2) for i in empty[:5])}; "
                           f"every row needs a value")


def _image_paths(root: Path, table: pd.DataFrame, csv: Path) -> list[Path]:
    paths = []
    for line, relative in enumerate(table["path"], start=2):
        path = Path(os.path.normpath(root / relative.strip()))  # lexical, so symlinked sub-folders work
        if not relative.strip() or not path.is_relative_to(root):
            raise DatasetError(f"{csv} line {line}: path {brief(relative)} must name a file inside {root}, "
                               f"relative to it")
        paths.append(path)
    return paths


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    text = values.str.strip()
    names = protocol.sorted_names(text.tolist())
    lookup = {name: index for index, name in enumerate(names)}
    return text.map(lookup).to_numpy(dtype=np.int64), names


def load(data_root: Path, seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetBundle:
    """Read the CSV and its images and apply the holdout protocol."""
    opts = protocol.check_image_options(options)
    root, csv = resolve_paths(data_root, opts)
    table = read_table(csv)
    _check_attribute("target", target, table, csv)
    _check_attribute("group", group, table, csv)
    paths = _image_paths(root, table, csv)
    present = np.array([path.is_file() for path in paths], dtype=bool)
    images, readable = protocol.read_images([p for p, ok in zip(paths, present) if ok], opts["image_size"])
    loaded = np.flatnonzero(present)[readable]
    if len(loaded) == 0:
        raise DatasetError(f"none of the {len(paths)} images listed in {csv} could be read; expected {LAYOUT}")
    rows = table.iloc[loaded]
    y, class_names = _codes(rows[target])
    group_codes, group_names = _codes(rows[group])
    splits = protocol.holdout_image_splits(images, y, group_codes, len(group_names), opts, np.random.default_rng(seed))
    opts.update(root=_recorded(root, Path(os.path.normpath(data_root)), "folder"), csv=_recorded(csv, root, "labels.csv"))
    return DatasetBundle("folder", splits, class_names, group_names, target, group,
                         options={"seed": seed, "target": target, "group": group, **opts},
                         skipped=len(paths) - len(loaded))
