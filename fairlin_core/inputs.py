"""The input guard every reader of user files uses (the counterpart of :mod:`fairlin_core.outputs`).

A user file (a checkpoint's sidecar and weights, a cost profile, a dataset's CSV, batches and images, a file to
import) is read only when, symbolic links followed, it is a regular file of at most a stated size: a FIFO, a
device such as ``/dev/zero``, a folder or a socket is refused before a byte is read (the open never blocks), and
at most ``limit + 1`` bytes are ever read, so a file that grows while it is read is refused too.

JSON from users (those files, ``--model-kwargs``, ``--dataset-option`` values) is parsed only after a linear scan
has bounded its nesting depth (:data:`MAX_JSON_DEPTH`) and its number of values (:data:`MAX_JSON_VALUES`): a
sidecar of millions of ``{}`` or a flag of 100,000 ``[`` is a clear error, not gigabytes or a RecursionError.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from .errors import FairLinError, shown

MAX_JSON_DEPTH = 64  # nesting levels of arrays and objects in one JSON text
MAX_JSON_VALUES = 1_000_000  # values in one JSON text: arrays, objects, their elements and members' values

_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\Z)', re.DOTALL)  # unterminated: to the end (linear)
_EMPTY = re.compile(r"\[\s*\]|\{\s*\}")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def size_text(size: int) -> str:
    """A byte count for a message: ``512 bytes``, ``31.5 MiB``, ``2.1 GiB``."""
    if size < 2**20:
        return f"{size:,} bytes"
    return f"{size / 2**20:.1f} MiB" if size < 2**30 else f"{size / 2**30:.1f} GiB"


def _kind(path: str | os.PathLike[str], mode: int) -> str:
    """What a file that is no regular file is, e.g. "a named pipe (FIFO)", noting a symbolic link to it."""
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return kind + (" (through a symbolic link)" if os.path.islink(path) else "")


def _too_large(path: object, what: str, limit: int, size: str) -> str:
    return f"{what} {shown(path)} is {size}; expected a file of at most {size_text(limit)}"


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str], limit: int, what: str,
                 error: type[FairLinError] = FairLinError) -> Iterator[BinaryIO]:
    """``path`` opened for binary reading when, links followed, it is a regular file of at most ``limit`` bytes.

    Opened non-blocking (a FIFO without a writer does not hang the open), then checked with ``fstat`` on the
    descriptor itself (no race with a file swapped after a check by name). ``error`` (naming ``what``, e.g.
    "sidecar", and the path) when the file is missing or unreadable, is a folder, FIFO, device or socket, is
    larger than ``limit`` bytes, or its name holds a NUL byte.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError:  # an embedded NUL byte
        raise error(f"{what} {shown(repr(str(path)))} contains a NUL byte; expected a file path") from None
    except OSError as failure:
        raise error(f"{what} {shown(path)} cannot be read ({failure.strerror}); expected a readable regular "
                    f"file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {shown(path)} is {_kind(path, info.st_mode)}, not a regular file; expected a regular "
                        f"file of at most {size_text(limit)}")
        if info.st_size > limit:
            raise error(_too_large(path, what, limit, size_text(info.st_size)))
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_limited(path: str | os.PathLike[str], limit: int, what: str,
                 error: type[FairLinError] = FairLinError) -> bytes:
    """The bytes of ``path`` (:func:`open_regular`): its size when opened (at most ``limit``) plus one byte are read
    at most, ``error`` when that byte is there (a file that grew after it was opened)."""
    with open_regular(path, limit, what, error) as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(size + 1)
    if len(data) > size:
        raise error(f"{what} {shown(path)} grew while it was read; expected a file that is not being written")
    return data


def check_regular(path: str | os.PathLike[str], limit: int, what: str,
                  error: type[FairLinError] = FairLinError) -> None:
    """:func:`open_regular`'s checks alone, for a reader that must give a library the path itself (a memory-mapped
    ``torch.load``)."""
    with open_regular(path, limit, what, error):
        pass


def check_json_shape(text: str, what: str, error: type[FairLinError] = FairLinError, *,
                     max_depth: int = MAX_JSON_DEPTH, max_values: int = MAX_JSON_VALUES) -> None:
    """``error`` when the JSON ``text`` nests deeper than ``max_depth`` or holds more than ``max_values`` values;
    a linear scan (brackets and commas outside strings), nothing parsed. Raw counts (strings included) decide
    most texts at once; only above a bound are the strings taken out and the exact figures computed."""
    opens = text.count("[") + text.count("{")
    if 1 + opens + text.count(",") <= max_values and opens <= max_depth:
        return
    bare = _STRING.sub('""', text)
    opens = bare.count("[") + bare.count("{")
    values = 1 + opens + bare.count(",")  # each value is the text's first, a container's first, or after a comma
    if values > max_values:
        values -= _EMPTY.subn("", bare)[1]  # an empty container has no first value
    if values > max_values:
        raise error(f"{what} holds {values:,} JSON values; expected at most {max_values:,}")
    if opens > max_depth:
        brackets = np.frombuffer(_NOT_BRACKET.sub("", bare).encode("ascii"), np.uint8)
        depth = int(np.cumsum(np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)).max(initial=0))
        if depth > max_depth:
            raise error(f"{what} is nested {depth:,} levels deep; expected at most {max_depth} levels of arrays "
                        f"and objects")


def parse_json(text: str | bytes, what: str, expected: str, error: type[FairLinError] = FairLinError) -> Any:
    """JSON ``text`` (str, or bytes in UTF-8/16/32) parsed after :func:`check_json_shape`; ``error`` saying
    ``what`` is wrong and ``expected`` when it is no text, too deep or large, or not valid JSON. The message
    never quotes the text."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode(json.detect_encoding(text))
        except UnicodeDecodeError:
            raise error(f"{what} is not valid JSON (not UTF-8 text); expected {expected}") from None
    check_json_shape(text, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as failure:
        reason = f"{failure.msg} at line {failure.lineno} column {failure.colno}"
    except ValueError:  # an integer of more than 4,300 digits
        reason = "a number with too many digits"
    raise error(f"{what} is not valid JSON ({reason}); expected {expected}")


def read_json(path: str | os.PathLike[str], limit: int, what: str, expected: str,
              error: type[FairLinError] = FairLinError) -> Any:
    """The JSON file ``path``: :func:`read_limited` then :func:`parse_json` (``what`` names it, e.g.
    "sidecar"; the path is added to every message)."""
    return parse_json(read_limited(path, limit, what, error), f"{what} {shown(path)}", expected, error)
