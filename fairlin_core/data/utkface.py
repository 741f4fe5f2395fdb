"""``utkface``: UTKFace face images from a local folder, with age, race and gender attributes.

Layout: ``<data_root>/UTKFace/`` holding ``<age>_<gender>_<race>_<datetime>.jpg`` (the aligned &
cropped release) or ``....jpg.chip.jpg`` files; age is an integer in years, gender 0 (male) or
1 (female), race 0..4 (White, Black, Asian, Indian, Others). Other files are ignored.

A ``.jpg`` whose name does not parse (wrong number of fields, a non-integer age/gender/race, an
age above 130, an out-of-range gender or race) or whose image cannot be read is skipped and counted in
``bundle.skipped``. Ages 0-1 are dropped (the paper's protocol) and counted in
``options["dropped_age"]``. Attributes: ``age`` (groups 2-12, 13-17, 18-64, 65+), ``race``,
``gender``; any of them can be the target or the group (default: race for both).

Protocol (seeded): stratified by target x group, 80% train / 20% test (``test_fraction``), ``val``
carved (stratified) from train (``val_fraction``); no ``balanced`` split.
x: float32 (N, 3, S, S), RGB resized bilinearly to ``image_size`` S, pixels / 255 normalised with
``mean`` = ``std`` = 0.5 per channel (so in [-1, 1]).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fairlin_core.data import protocol
from fairlin_core.data.bundle import DatasetBundle
from fairlin_core.errors import DatasetError

ATTRIBUTES = ("age", "race", "gender")
DEFAULT_TARGET = DEFAULT_GROUP = "race"
DEFAULTS: dict[str, Any] = {"image_size": 32, "test_fraction": 0.2, "val_fraction": 0.1,
                            "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
REPORTED = ("dropped_age",)
FOLDER = "UTKFace"
LAYOUT = (f"<data_root>/{FOLDER}/ holding <age>_<gender>_<race>_<datetime>.jpg files "
          "(UTKFace aligned & cropped, https://susanqq.github.io/UTKFace/)")
NAMES = {"age": ["2-12", "13-17", "18-64", "65+"],
         "race": ["White", "Black", "Asian", "Indian", "Others"],
         "gender": ["male", "female"]}
AGE_BOUNDS = (2, 13, 18, 65)  # lower bound of each age group; ages below 2 are dropped
MAX_AGE = 130  # a name with a larger age (e.g. 20 digits) does not follow the scheme
_NAME = re.compile(r"(\d+)_(\d+)_(\d+)_([^_]+)\.jpg(\.chip\.jpg)?", re.IGNORECASE)


def parse_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from a UTKFace file name, or None when it does not follow the scheme."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    if any(len(match.group(i)) > 3 for i in (1, 2, 3)):
        return None
    age, gender, race = (int(match.group(i)) for i in (1, 2, 3))
    if age > MAX_AGE or gender >= len(NAMES["gender"]) or race >= len(NAMES["race"]):
        return None
    return age, gender, race


def age_group(age: int) -> int:
    """Index into ``NAMES["age"]`` for an age >= 2."""
    return int(np.searchsorted(AGE_BOUNDS, age, side="right")) - 1


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(".jpg"))


def missing(data_root: Path, options: Mapping[str, Any]) -> str:
    """Cheap check: "" when the UTKFace folder holds a ``.jpg``, else what is missing."""
    folder = data_root / FOLDER
    if not folder.is_dir():
        return f"missing {folder}"
    if not any(p.name.lower().endswith(".jpg") for p in folder.iterdir()):
        return f"no .jpg files in {folder}"
    return ""


def load(data_root: Path, seed: int, target: str, group: str, options: dict[str, Any]) -> DatasetBundle:
    """Parse the file names, read the images and apply the holdout protocol."""
    opts = protocol.check_image_options(options)
    folder = data_root / FOLDER
    if not folder.is_dir():
        raise DatasetError(f"cannot load UTKFace: missing {folder}; expected {LAYOUT}")
    files = _image_files(folder)
    parsed = [(path, parse_name(path.name)) for path in files]
    named = [(path, fields) for path, fields in parsed if fields is not None]
    eligible = [(path, fields) for path, fields in named if fields[0] >= AGE_BOUNDS[0]]
    images, readable = protocol.read_images([path for path, _ in eligible], opts["image_size"])
    skipped = (len(parsed) - len(named)) + int((~readable).sum())
    kept = [fields for (_, fields), ok in zip(eligible, readable) if ok]
    if not kept:
        raise DatasetError(f"no usable UTKFace images in {folder} ({len(files)} .jpg files, {skipped} skipped "
                           f"as unparsable or unreadable, {len(named) - len(eligible)} aged 0-1); "
                           f"expected {LAYOUT}")
    table = np.array(kept, dtype=np.int64)
    attributes = {"age": np.array([age_group(a) for a in table[:, 0]], dtype=np.int64),
                  "gender": table[:, 1], "race": table[:, 2]}
    splits = protocol.holdout_image_splits(images, attributes[target], attributes[group], len(NAMES[group]),
                                           opts, np.random.default_rng(seed))
    options_out = {"seed": seed, "target": target, "group": group, **opts,
                   "dropped_age": len(named) - len(eligible)}
    return DatasetBundle("utkface", splits, list(NAMES[target]), list(NAMES[group]), target, group,
                         options=options_out, skipped=skipped)
