"""Audit results on disk: the tables' schema (:data:`TABLES`, :data:`COLUMNS`), their documented shape
(:func:`shaped`) and the folder format, read (:func:`read_folder`) and written (:func:`write_folder`) through
the input and output guards.

A results folder holds one Parquet file per table (``NAME.parquet``, zstd) plus ``configs.json`` and
``meta.json``; folders of the older ``NAME.csv`` tables still read. The two large tables (density,
attributions) may be read on first access (:class:`LazyTable`). What the tables mean is documented in
:mod:`fairlin_core.audits.results`; older configs and runs tables are brought to today's shape there
(:mod:`fairlin_core.audits.migration`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import FairLinError
from ..inputs import open_regular, read_json
from ..runtime import json_ready
from .diagnostics.base import result_columns

TABLES = ("runs", "groups", "diagnostics", "density", "attributions", "group_sizes")
LAZY_TABLES = ("density", "attributions")  # the large per-run detail tables: read on first access
COLUMNS = {
    "runs": ["run_id", "method", "budget", "budget_fraction", "relu_count", "base_relu_count", "seed", "mitigation",
             "configuration", "param_distance"],
    "groups": ["run_id", "split", "group", "n", "base_accuracy", "accuracy", "relative_drop"],
    "diagnostics": ["run_id", "group", "model"],  # then every registered diagnostic's result columns
    "density": ["run_id", "group", "model", "eigenvalue", "density"],
    "attributions": ["run_id", "group", "model", "method", "element", "value"],
    "group_sizes": ["split", "group", "n"],
}
TEXT_COLUMNS = {"run_id": str, "group": str, "budget": str, "method": str, "mitigation": str, "model": str,
                "split": str, "configuration": str}
PARQUET_COMPRESSION = "zstd"
MAX_JSON_BYTES = 64 * 1024 * 1024  # configs.json and meta.json of one results folder
MAX_TABLE_BYTES = 2**30  # one table file of a results folder


class LazyTable:
    """A table that is read on first access: ``load()`` returns the DataFrame."""

    def __init__(self, load: Callable[[], pd.DataFrame]):
        self.load = load


def shaped_lazily(table: pd.DataFrame | LazyTable | None, name: str) -> pd.DataFrame | LazyTable:
    """:func:`shaped`, applied when a :class:`LazyTable` is read."""
    if isinstance(table, LazyTable):
        load = table.load
        return LazyTable(lambda: shaped(load(), name))
    return shaped(table, name)


def columns_of(name: str) -> list[str]:
    """The columns of table ``name``: :data:`COLUMNS`, and for ``diagnostics`` the kept columns of every registered
    diagnostic after them (:func:`~fairlin_core.audits.diagnostics.base.result_columns`)."""
    return COLUMNS[name] + (result_columns() if name == "diagnostics" else [])


def shaped(table: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """Table ``name`` in its documented shape: the columns of :data:`COLUMNS` in order (absent ones NaN, others
    dropped), text columns as str, a fresh index; None or an empty table gives an empty one of those columns."""
    columns = columns_of(name)
    if table is None or table.empty:
        return pd.DataFrame({c: pd.Series(dtype=TEXT_COLUMNS.get(c, float)) for c in columns})
    table = table.copy()
    for column in columns:
        if column not in table:
            table[column] = float("nan")
    for column, kind in TEXT_COLUMNS.items():
        if column in table:
            table[column] = table[column].astype(kind)
    return table[columns].reset_index(drop=True)


def read_folder(folder: str | Path, *, lazy: bool = True) -> tuple[dict[str, pd.DataFrame | LazyTable],
                                                                  dict[str, Any], dict[str, Any]]:
    """(tables by name, configs, meta) of a results folder (``NAME.parquet`` tables, or the older ``NAME.csv``;
    Parquet is preferred where both exist), each file through the input guard; FairLinError naming what is
    missing or broken. ``lazy``: density and attributions as :class:`LazyTable` (a FairLinError on first access
    if their file changed since the others were read). The tables are as stored (shaped and migrated by
    :meth:`~fairlin_core.audits.results.AuditResults.from_tables`)."""
    folder = Path(folder)
    files = {name: _table_file(folder, name) for name in TABLES}
    missing = [f"{name}.parquet" for name, path in files.items() if path is None]
    missing += [f"{n}.json" for n in ("configs", "meta") if not (folder / f"{n}.json").is_file()]
    if missing:
        raise FairLinError(f"{folder} is not an audit results folder: {', '.join(missing)} missing (tables may "
                           f"also be the older NAME.csv); expected the files written by "
                           f"`python -m fairlin_core default-audit`")
    tables: dict[str, pd.DataFrame | LazyTable] = {}
    for name, path in files.items():
        if lazy and name in LAZY_TABLES:
            tables[name] = LazyTable(functools.partial(_read_unchanged, path, name, _stamp(path)))
        else:
            tables[name] = _read_table(path, name)
    configs, meta = (read_json(folder / f"{name}.json", MAX_JSON_BYTES, "audit results file", "the JSON written with "
                               "the results (regenerate it with `python -m fairlin_core default-audit`)")
                     for name in ("configs", "meta"))
    return tables, configs, meta


def _table_file(folder: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _read_table(path: Path, name: str) -> pd.DataFrame:
    """One table file, read through the input guard (a regular file of at most :data:`MAX_TABLE_BYTES`)."""
    with open_regular(path, MAX_TABLE_BYTES, "audit results table") as handle:
        try:
            if path.suffix == ".parquet":
                return pd.read_parquet(handle)
            return pd.read_csv(handle, dtype={c: t for c, t in TEXT_COLUMNS.items() if c in columns_of(name)})
        except (ValueError, OSError, pd.errors.ParserError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise _damaged(path.parent, error) from None


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _read_unchanged(path: Path, name: str, stamp: tuple[int, int]) -> pd.DataFrame:
    """A lazy table's read: refused when the file is not the one the other tables were read with."""
    try:
        same = _stamp(path) == stamp
    except OSError:
        same = False
    if not same:
        raise FairLinError(f"{path} changed (or went away) after the other tables of {path.parent} were loaded; "
                           f"load the results again")
    return _read_table(path, name)


def _damaged(folder: Path, error: Exception) -> FairLinError:
    return FairLinError(f"{folder} holds a damaged audit results file ({error}); regenerate it with "
                        f"`python -m fairlin_core default-audit`")


def write_folder(folder: str | Path, tables: dict[str, pd.DataFrame], configs: dict[str, Any],
                 meta: dict[str, Any]) -> list[Path]:
    """Write every table as ``NAME.parquet`` (staged, then renamed into place; an older ``NAME.csv`` there is
    removed: one format per folder) plus configs.json and meta.json; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        path = folder / f"{name}.parquet"
        staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        table.to_parquet(staging, index=False, compression=PARQUET_COMPRESSION)
        staging.replace(path)
        (folder / f"{name}.csv").unlink(missing_ok=True)  # one format per folder
        paths.append(path)
    for name, data in (("configs", configs), ("meta", meta)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(json_ready(data), indent=1, sort_keys=True, allow_nan=False) + "\n")
        paths.append(path)
    return paths
