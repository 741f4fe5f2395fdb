"""The output guard every writer uses before any work starts: the folder exists and is writable, the names
fit the file system, and finished results are not replaced unless asked to.

A command that writes finished results (a checkpoint, result tables) calls :func:`prepare_output` first, so
a bad ``--out`` (under a regular file, in an unwritable folder, a name too long or not UTF-8) or an existing
result is a clear :class:`~fairlin_core.errors.FairLinError` before training starts, never a lost model afterwards.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from .errors import FairLinError, brief, shown

OVERWRITE_HINT = "pass --overwrite (overwrite=True) to replace it"
_DEFAULT_NAME_MAX = 255
_DEFAULT_PATH_MAX = 4096


def _name_max(folder: Path) -> tuple[int, int]:
    """(longest file name, longest path) the file system under ``folder``'s nearest existing ancestor allows."""
    probe = folder
    while not os.path.exists(probe) and probe != probe.parent:  # os.path: False (no error) for too-long names
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        return _DEFAULT_NAME_MAX, _DEFAULT_PATH_MAX


def _check_encodable(path: Path, what: str) -> None:
    """FairLinError when ``path`` is no UTF-8 text: a name given as bytes that are not UTF-8 (the command line
    decodes them to surrogates ``\\udc80``-``\\udcff``) or a str holding lone surrogates. Such a name would be
    written but could not be printed, recorded in JSON or shown by the dashboard afterwards."""
    try:
        str(path).encode()
    except UnicodeEncodeError as error:
        raise FairLinError(f"{what} {brief(str(path))} is not valid UTF-8 text (character {error.start + 1} is "
                           f"{brief(str(path)[error.start])}: a non-UTF-8 byte or a lone surrogate); expected a "
                           f"name in UTF-8") from None


def _matches(folder: Path, pattern: str) -> list[Path]:
    """The files under ``folder`` named ``pattern`` (a glob pattern when it has ``*``, ``?`` or ``[``)."""
    if any(c in pattern for c in "*?["):
        return list(folder.glob(pattern))
    return [folder / pattern] if (folder / pattern).exists() else []


def check_writable(folder: str | os.PathLike[str], what: str = "output folder", keep: bool = False) -> Path:
    """Create ``folder`` (and its parents), write and remove a probe file in it; returns it (absolute).

    The folders this call created are removed again unless ``keep`` (a command refused later for another
    reason leaves nothing behind; writers create their folder when they write). FairLinError naming the
    folder when its name is no UTF-8 text, a name is too long, a parent is a regular file, or it is not writable.
    """
    folder = Path(folder).expanduser().absolute()
    _check_encodable(folder, what)
    name_max, path_max = _name_max(folder)
    long_part = next((part for part in folder.parts if len(part.encode()) > name_max), None)
    if long_part is not None or len(str(folder).encode()) >= path_max:
        raise FairLinError(f"{what} {shown(folder)} has a name too long for the file system (at most {name_max} "
                           f"bytes per name, {path_max} per path); expected a shorter path")
    created = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FairLinError(f"{what} {shown(folder)} is a file, not a folder; expected a folder path") from None
    except NotADirectoryError:
        raise FairLinError(f"{what} {shown(folder)} lies under a regular file; expected a folder path") from None
    except OSError as error:
        raise FairLinError(f"{what} {shown(folder)} cannot be created ({error.strerror}); expected a writable "
                           f"location") from None
    if not folder.is_dir():
        raise FairLinError(f"{what} {shown(folder)} is a file, not a folder; expected a folder path")
    probe = folder / f".fairlin-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = "read-only" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else error.strerror
        raise FairLinError(f"{what} {shown(folder)} is not writable ({reason}); expected a folder this "
                           f"process can write") from None
    finally:
        if not keep:
            for path in created:  # deepest first; only the empty folders this call made
                try:
                    path.rmdir()
                except OSError:
                    break
    return folder


def prepare_output(folder: str | os.PathLike[str], finished: Iterable[str] = (), *, overwrite: bool = False,
                   what: str = "output folder", hint: str = OVERWRITE_HINT) -> Path:
    """Check an output location before any work starts; returns the folder (absolute, created).

    folder: where the results go. finished: names or glob patterns (e.g. ``model.safetensors``, ``*.csv``)
    of the finished results the caller will write there; each name must fit the file system, and when one
    exists already the call refuses (FairLinError naming the path and ``hint``) unless ``overwrite``.
    """
    folder = check_writable(folder, what)
    names = list(finished)
    for name in names:
        _check_encodable(Path(name), "output name")
    name_max = _name_max(folder)[0]
    long_name = next((n for n in names if len(n.encode()) > name_max), None)
    if long_name is not None:
        raise FairLinError(f"output name {shown(Path(long_name))} is too long for the file system (at most "
                           f"{name_max} bytes); expected a shorter name")
    if not overwrite:
        existing = sorted({p.name for pattern in names for p in _matches(folder, pattern)})
        if existing:
            listed = ", ".join(existing[:4]) + (f" and {len(existing) - 4} more" if len(existing) > 4 else "")
            raise FairLinError(f"{shown(folder)}: a finished result already exists there ({listed}); refusing to "
                               f"replace it: choose another output, or {hint}")
    return folder


def prepare_output_file(path: str | os.PathLike[str], companions: Iterable[str] = (), *, overwrite: bool = False,
                        what: str = "output", hint: str = OVERWRITE_HINT) -> Path:
    """:func:`prepare_output` for one file (e.g. ``NAME.safetensors``) and its companions written beside it
    (suffixes, e.g. ``.json``); returns the file path (absolute)."""
    path = Path(path).expanduser().absolute()
    names = [path.name, *(path.with_suffix(suffix).name for suffix in companions)]
    folder = prepare_output(path.parent, names, overwrite=overwrite, what=f"folder of {what}", hint=hint)
    return folder / path.name
