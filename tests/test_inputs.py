"""The input guard (fairlin_core/inputs.py): only regular files of bounded size are read (a FIFO never blocks,
/dev/zero is never read), and JSON is parsed only within its nesting and size bounds. Every bad input is built
here; the FIFO cases run in a subprocess with a timeout, so a reader that blocks fails instead of hanging."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, SECRET
from fairlin_core.errors import CheckpointError, FairLinError
from fairlin_core.inputs import (MAX_JSON_DEPTH, MAX_JSON_VALUES, check_json_shape, open_regular, parse_json,
                                 read_json, read_limited)


def test_regular_files_are_read_whole_and_the_limit_is_exact(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"x" * 100)
    assert read_limited(path, 100, "file") == b"x" * 100
    with pytest.raises(FairLinError, match=r"file .*a\.json is 100 bytes; expected a file of at most 99 bytes"):
        read_limited(path, 99, "file")
    link = tmp_path / "link.json"
    link.symlink_to(path)  # a link to a regular file is read like the file
    assert read_limited(link, 100, "file") == b"x" * 100


@pytest.mark.parametrize("kind, expected", [("folder", "is a folder"), ("zero", "a character device \\(through a "
                                            "symbolic link\\)"), ("null-byte", "contains a NUL byte"),
                                            ("missing", "cannot be read \\(No such file or directory\\)")])
def test_what_is_no_regular_file_is_refused_before_a_byte_is_read(tmp_path, kind, expected):
    path = {"folder": tmp_path, "zero": tmp_path / "zero.json", "null-byte": tmp_path / "a\0b.json",
            "missing": tmp_path / "absent.json"}[kind]
    if kind == "zero":
        path.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match=f"^sidecar .* {expected}"):
        read_limited(path, 1 << 20, "sidecar", CheckpointError)


FIFO = textwrap.dedent("""
    import os, sys
    from fairlin_core.errors import FairLinError
    from fairlin_core.inputs import open_regular, read_json
    os.mkfifo(sys.argv[1])
    try:
        read_json(sys.argv[1], 1000, "profile", "JSON")
    except FairLinError as error:
        print(error)
    try:
        with open_regular(sys.argv[1], 10, "pipe"):
            pass
    except FairLinError as error:
        print(error)
""")


def test_a_fifo_without_a_writer_is_refused_at_once(tmp_path):
    out = subprocess.run([sys.executable, "-c", FIFO, str(tmp_path / "pipe.json")], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all("is a named pipe (FIFO), not a regular file" in line for line in lines), out


def test_open_regular_gives_a_blocking_handle_of_the_file_it_checked(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc")
    with open_regular(path, 3, "data") as handle:
        assert os.get_blocking(handle.fileno()) and handle.read() == b"abc"
    assert handle.closed


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000, r"is nested 100,000 levels deep; expected at most 64 levels"),
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), r"is nested 65 levels deep"),
    ("[" + ",".join(["{}"] * 1_100_000) + "]", r"holds 1,100,001 JSON values; expected at most 1,000,000"),
    ("[" + "0," * MAX_JSON_VALUES + "0]", r"holds 1,000,002 JSON values"),
])
def test_json_beyond_the_bounds_is_refused_before_parsing(text, message):
    with pytest.raises(FairLinError, match=f"^the flag {message}"):
        parse_json(text, "the flag", "JSON")


def test_json_within_the_bounds_parses_and_strings_do_not_count():
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(deepest, "x", "JSON") == json.loads(deepest)
    brackets = {"name": "[" * 100_000 + "{" * 100_000 + ",\\\"[" * 1000}  # in a string: text, not nesting
    assert parse_json(json.dumps(brackets), "x", "JSON") == brackets
    values = list(range(MAX_JSON_VALUES - 1))  # the array and its elements: exactly the bound
    assert parse_json(json.dumps(values), "x", "JSON") == values
    empties = [[] for _ in range(MAX_JSON_VALUES - 1)]  # empty containers are counted as one value each
    assert len(parse_json(json.dumps(empties), "x", "JSON")) == MAX_JSON_VALUES - 1
    check_json_shape('"unterminated [[[[' + "[" * 100, "x")  # an open string takes the rest: nothing nests


@pytest.mark.parametrize("data, reason", [
    (f'{{"a": {SECRET}'.encode(), r"Expecting value at line 1 column 7"),
    (b"\xff\xfe\xfd" + SECRET.encode(), r"not UTF-8 text"),
    (b'{"a": ' + b"1" * 5000 + b"}", r"a number with too many digits"),
])
def test_invalid_json_is_one_error_that_quotes_nothing(data, reason):
    with pytest.raises(FairLinError, match=f"^profile is not valid JSON \\({reason}\\); expected a profile") as error:
        parse_json(data, "profile", "a profile")
    assert "root:x" not in str(error.value) and "SECRET" not in str(error.value)


def test_read_json_names_the_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"a": [1, 2]}')
    assert read_json(path, 100, "cost profile", "JSON") == {"a": [1, 2]}
    path.write_text("[" * 100)
    with pytest.raises(FairLinError, match=f"^cost profile {path} is nested 100 levels deep"):
        read_json(path, 1000, "cost profile", "JSON")


def test_a_file_that_grows_after_it_was_opened_is_refused(tmp_path, monkeypatch):
    """Bytes past the size the file had when opened are never taken in: one more byte is read to see them."""
    import fairlin_core.inputs as inputs
    path = tmp_path / "growing.json"
    path.write_bytes(b"x" * 10)
    real_fstat = os.fstat

    def fstat_at_open(fd):  # the size the file had when it was opened: 5 bytes (5 were appended since)
        info = list(real_fstat(fd))
        info[6] = 5  # st_size
        return os.stat_result(info)

    monkeypatch.setattr(inputs.os, "fstat", fstat_at_open)
    with pytest.raises(FairLinError, match=r"growing\.json grew while it was read"):
        read_limited(path, 100, "sidecar")
