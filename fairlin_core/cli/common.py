"""Helpers shared by the CLI's command modules: JSON output, ``key=value`` options, integer lists, data flags."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import FairLinError
from ..runtime import comma_list


def print_json(data: Any) -> None:
    """The ``--json`` output: indented strict JSON (numpy scalars as floats)."""
    print(json.dumps(data, indent=2, allow_nan=False, default=float))


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with value parsed as JSON when it is JSON (numbers, booleans), else a string."""
    if "=" not in text:
        raise FairLinError(f"dataset option {text!r} is not of the form key=value (e.g. minor_fraction=0.2)")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def int_list(text: str, flag: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; anything else is a clear error naming ``flag``."""
    try:
        return [int(part) for part in comma_list(text)]
    except ValueError as error:
        raise FairLinError(f"{flag} expects comma-separated integers (e.g. 1,2), got {text!r}") from error


def add_data_root_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")


def add_data_args(parser: argparse.ArgumentParser, with_seed: bool = True) -> None:
    """--data-root, --seed (optional), --target, --group and repeatable --dataset-option KEY=VALUE."""
    add_data_root_arg(parser)
    if with_seed:
        parser.add_argument("--seed", type=int, default=0, help="seed of the dataset splits (default 0)")
    parser.add_argument("--target", help="attribute to predict, where the dataset has several")
    parser.add_argument("--group", help="protected-group attribute, where the dataset has several")
    parser.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option, repeatable (e.g. minor_fraction=0.2, shape=moons)")


def add_json_arg(parser: argparse.ArgumentParser, help: str = "print JSON") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_overwrite_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """--overwrite: replace ``what`` (without it, finished results at the output are refused before any work)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} (without it the command refuses before any work starts)")


def print_notes(notes: list[str]) -> None:
    """One ``note: ...`` line on stderr per note (e.g. duplicate inputs that were merged)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
