"""The dataset registry: names -> loaders, the data root, ``load_dataset`` and ``list_datasets``.

Every loader module (``digits``, ``toy2d``, ``cifar10``, ``svhn``, ``utkface``, ``folder``) exposes
``ATTRIBUTES`` (None when read from the files), ``DEFAULT_TARGET``, ``DEFAULT_GROUP``, ``DEFAULTS``
(every option it accepts with its default) and ``load(data_root, seed, target, group, options)``;
file-backed ones also ``LAYOUT`` and ``missing(data_root, options) -> str`` (a cheap check), and those whose
shape and names are fixed (``cifar10``, ``svhn``) ``outline(seed, target, group, options) -> DatasetOutline``
(what :func:`load_or_outline` gives when the files are absent); a loader with path options (``folder``) also
``option_paths(data_root, options) -> {option: path}``.

Two guards every load passes: size options are bounded (``SIZE_LIMITS``), and with
``confine_paths=True`` (options read from a checkpoint sidecar, which is never trusted) every path
option must be relative, without ``..``, and resolve (symlinks followed) inside the data root.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from fairlin_core.data import cifar10, digits, folder, svhn, toy2d, utkface
from fairlin_core.data.bundle import DatasetBundle, DatasetOutline
from fairlin_core.errors import DatasetError, brief, check_seed, clip


DATA_ROOT_ENV = "FAIRLIN_DATA_ROOT"
DEFAULT_DATA_ROOT = "data"
# Upper bounds of the size options of any dataset (pixels per side of a resized image, points of a
# synthetic set): one 512 x 512 RGB float image is 3 MiB, a million 2D points 8 MiB.
SIZE_LIMITS: dict[str, int] = {"image_size": 512, "n": 1_000_000}


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one dataset.

    attributes: the attribute names usable as target or group (None: the CSV's columns).
    defaults: every option the loader accepts (besides seed, target, group) with its default.
    embedded: needs no files (bundled with a package, or synthetic).
    reported: keys the loader adds to ``bundle.options`` as information (e.g. ``dropped_age``);
    ``load_dataset`` accepts and ignores them so that ``load_dataset(name, **bundle.options)``
    reproduces a bundle.
    layout: the expected files, for messages ("" for embedded datasets).
    load: ``load(data_root, seed, target, group, options) -> DatasetBundle``.
    missing: ``missing(data_root, options) -> str``, what is missing on disk ("" when present).
    paths: the options that are file paths; option_paths(data_root, options) -> {option: the path it
    names} (None when there are none).
    outline: ``outline(seed, target, group, options) -> DatasetOutline`` without the files (None when the
    shape or names come from the files).
    """

    name: str
    description: str
    attributes: tuple[str, ...] | None
    default_target: str
    default_group: str
    embedded: bool
    defaults: Mapping[str, Any]
    reported: tuple[str, ...]
    layout: str
    load: Callable[..., DatasetBundle] = field(repr=False)
    missing: Callable[[Path, Mapping[str, Any]], str] = field(repr=False)
    paths: tuple[str, ...] = ()
    option_paths: Callable[[Path, Mapping[str, Any]], dict[str, Path]] | None = field(default=None, repr=False)
    outline: Callable[..., DatasetOutline] | None = field(default=None, repr=False)


def _nothing_missing(data_root: Path, options: Mapping[str, Any]) -> str:
    return ""


def _spec(name: str, description: str, module: ModuleType, *, embedded: bool) -> DatasetSpec:
    return DatasetSpec(name=name, description=description, attributes=module.ATTRIBUTES,
                       default_target=module.DEFAULT_TARGET, default_group=module.DEFAULT_GROUP,
                       embedded=embedded, defaults=MappingProxyType(dict(module.DEFAULTS)),
                       reported=getattr(module, "REPORTED", ()), layout=getattr(module, "LAYOUT", ""),
                       load=module.load, missing=_nothing_missing if embedded else module.missing,
                       paths=tuple(getattr(module, "PATH_OPTIONS", ())),
                       option_paths=getattr(module, "option_paths", None),
                       outline=getattr(module, "outline", None))


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    _spec("digits", "scikit-learn 8x8 digits, 90% of 0-4 / 20% of 5-9 kept", digits, embedded=True),
    _spec("toy2d", "synthetic 2D majority/minority shapes (the paper's crescent by default)", toy2d,
          embedded=True),
    _spec("cifar10", "CIFAR-10, 90% of classes 0-4 / 10% of 5-9 kept (paper protocol)", cifar10, embedded=False),
    _spec("svhn", "SVHN cropped digits (naturally imbalanced)", svhn, embedded=False),
    _spec("utkface", "UTKFace faces; age, race and gender attributes", utkface, embedded=False),
    _spec("folder", "your images + labels.csv (path,label,group,...)", folder, embedded=False),
)}


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """The data root as an absolute path: ``data_root`` if given, else ``$FAIRLIN_DATA_ROOT`` if set
    and non-empty, else ``./data`` (relative to the current directory). The folder need not exist."""
    chosen = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(chosen).expanduser().absolute()


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``; DatasetError listing the valid names otherwise."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown dataset {brief(name)}; valid names: {', '.join(DATASETS)}") from None


def _check_attribute(spec: DatasetSpec, role: str, value: Any) -> None:
    if not isinstance(value, str):
        raise DatasetError(f"{role} must be an attribute name (a string), got {brief(value)}")
    if spec.attributes is not None and value not in spec.attributes:
        raise DatasetError(f"{role} {brief(value)} is not an attribute of {spec.name}; valid: "
                           f"{', '.join(spec.attributes)}")


def _check_sizes(name: str, options: Mapping[str, Any]) -> None:
    """Refuse a size option above its limit (its type and lower bound are the loader's to check)."""
    for key, limit in SIZE_LIMITS.items():
        value = options.get(key)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > limit:
            raise DatasetError(f"{key} of dataset {name} must be at most {limit:,}, got {brief(value)}")


def _confine(spec: DatasetSpec, data_root: Path, options: dict[str, Any], given: Mapping[str, Any]) -> None:
    """Refuse path options (set in ``given``) that are absolute, contain ``..`` or resolve, symlinks
    followed, outside ``data_root``: what an untrusted sidecar may name."""
    where = "paths from a checkpoint sidecar must be relative to the data root and stay inside it"
    for key in spec.paths:
        value = given.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"dataset option {key} must be a relative path (text), got {brief(value)}; {where}")
        relative = Path(value)
        if relative.is_absolute() or value.startswith("~") or ".." in relative.parts:
            raise DatasetError(f"dataset option {key} {brief(value)} is absolute or leaves its folder; {where} "
                               f"({data_root}); to use data elsewhere, name it with --dataset and --dataset-option")
    named = spec.option_paths(data_root, options) if spec.option_paths is not None else {}
    boundary = data_root.resolve()
    for key, path in named.items():
        if given.get(key) is not None and not path.resolve().is_relative_to(boundary):
            raise DatasetError(f"dataset option {key} {brief(given[key])} resolves (through a symbolic link) "
                               f"outside the data root {data_root}; {where}")


def load_dataset(name: str, *, data_root: str | os.PathLike[str] | None = None, seed: int = 0,
                 target: str | None = None, group: str | None = None, confine_paths: bool = False,
                 **options: Any) -> DatasetBundle:
    """Load dataset ``name`` with its protocol applied (seeded splits train/val/test[/balanced]).

    data_root: see :func:`resolve_data_root`. target/group: attribute names (defaults per dataset).
    options: dataset options (``DATASETS[name].defaults`` lists them with their defaults); an unknown
    option is a DatasetError listing the valid ones. ``bundle.options`` holds every resolved option,
    seed, target and group, so ``load_dataset(name, data_root=..., **bundle.options)`` reloads the
    same splits. confine_paths: the options come from an untrusted source (a checkpoint sidecar): path
    options must be relative and stay inside the data root (symlinks followed).
    """
    spec, root, seed, target, group, resolved = _resolve(name, data_root, seed, target, group, options)
    if confine_paths:
        _confine(spec, root, resolved, options)
    return spec.load(root, seed, target, group, resolved)


def load_or_outline(name: str, *, data_root: str | os.PathLike[str] | None = None, seed: int = 0,
                    target: str | None = None, group: str | None = None,
                    **options: Any) -> DatasetBundle | DatasetOutline:
    """:func:`load_dataset` when the files are there (or the dataset is embedded); when they are absent, the
    dataset's outline (shape, names, resolved options and what is missing) if its loader can tell it without
    them, else the loader's missing-files DatasetError as :func:`load_dataset` gives it."""
    spec, root, seed, target, group, resolved = _resolve(name, data_root, seed, target, group, options)
    gap = spec.missing(root, resolved)
    if gap and spec.outline is not None:
        return dataclasses.replace(spec.outline(seed, target, group, resolved), missing=gap)
    return spec.load(root, seed, target, group, resolved)


def _resolve(name: str, data_root: str | os.PathLike[str] | None, seed: int, target: str | None,
             group: str | None, options: Mapping[str, Any]) -> tuple[DatasetSpec, Path, int, str, str, dict]:
    """(spec, data root, checked seed, target, group, every option resolved): the checks every load passes
    (unknown options, attributes, seed, sizes)."""
    spec = get_spec(name)
    valid = dict(spec.defaults)
    unknown = sorted(str(k) for k in set(options) - set(valid) - set(spec.reported))
    if unknown:
        raise DatasetError(f"unknown option(s) {clip(', '.join(unknown))} for dataset {brief(name)}; valid options: "
                           f"{', '.join(['seed', 'target', 'group', *valid])}")
    target = spec.default_target if target is None else target
    group = spec.default_group if group is None else group
    _check_attribute(spec, "target", target)
    _check_attribute(spec, "group", group)
    seed = check_seed(seed, error=DatasetError)
    resolved = {**valid, **{k: v for k, v in options.items() if k in valid}}
    _check_sizes(name, resolved)
    return spec, resolve_data_root(data_root), seed, target, group, resolved


def list_datasets(data_root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every registered dataset as ``{"name", "available", "reason"}``, in registry order.

    A cheap check (files present, nothing read): embedded datasets are always available; for the
    others ``reason`` names what is missing and the expected layout, or is "" when present.
    """
    root = resolve_data_root(data_root)
    rows = []
    for spec in DATASETS.values():
        if spec.embedded:
            rows.append({"name": spec.name, "available": True, "reason": "embedded (no files needed)"})
            continue
        missing = spec.missing(root, spec.defaults)
        reason = f"{missing}; expected {spec.layout}" if missing else ""
        rows.append({"name": spec.name, "available": not missing, "reason": reason})
    return rows
