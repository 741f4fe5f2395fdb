"""Helpers shared by the CLI's command modules: JSON output, ``key=value`` options, the types of integer, run-size
and real flags (checked at parse time, through :mod:`fairlin_core.limits`), integer, seed and budget lists, data
flags."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..errors import FairLinError, brief, check_seed
from ..inputs import check_json_shape, parse_json
from ..limits import FINITE, Interval, check_count, check_many, check_real, count_range
from ..runtime import comma_list, json_ready


def print_json(data: Any) -> None:
    """The ``--json`` output of every command: indented strict JSON, NaN and infinities as null and numpy scalars
    as numbers (:func:`~fairlin_core.runtime.json_ready`)."""
    print(json.dumps(json_ready(data), indent=2, allow_nan=False))


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with value parsed as JSON when it is JSON (numbers, booleans), else a string; a value nested
    or sized beyond the JSON bounds (:func:`~fairlin_core.inputs.check_json_shape`) is refused either way."""
    if "=" not in text:
        raise FairLinError(f"dataset option {brief(text)} is not of the form key=value (e.g. minor_fraction=0.2)")
    key, value = text.split("=", 1)
    check_json_shape(value, f"the value of dataset option {brief(key)}")
    try:
        return key, json.loads(value)
    except ValueError:  # not JSON (or an integer of more than 4,300 digits): the text itself
        return key, value


def dataset_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--dataset-option KEY=VALUE`` pairs as a dict, each checked whether or not it is used. Where
    ``--dataset`` is optional (linearize, compare, audit), options without it are refused: they would configure
    nothing (the checkpoint's own dataset keeps the options it was trained with)."""
    if args.dataset_option and getattr(args, "dataset", True) is None:
        raise FairLinError(f"--dataset-option {brief(args.dataset_option[0])} configures the dataset of --dataset; "
                           f"expected --dataset NAME with it")
    return dict(parse_option(o) for o in args.dataset_option)


def int_arg(text: str) -> int:
    """argparse ``type`` of an integer flag whose range is checked where it is used (model sizes: by the model
    registry): an integer, else an error echoing at most 80 characters of ``text``."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {brief(text)}; expected an integer") from None


def count_arg(limit: str, minimum: int = 1) -> Callable[[str], int]:
    """argparse ``type`` of a run-size flag (epochs, steps, seeds, workers, ...): an integer from ``minimum`` to
    ``RUN_LIMITS[limit]``, refused at parse time otherwise."""
    def parse(text: str) -> int:
        try:
            return check_count(int(text), "value", limit, minimum)
        except (ValueError, FairLinError):
            raise argparse.ArgumentTypeError(f"expected {count_range(limit, minimum)}, got {brief(text)}") from None
    return parse


def float_arg(interval: Interval = FINITE) -> Callable[[str], float]:
    """argparse ``type`` of a real flag: a finite number in ``interval`` (``inf`` and ``nan`` are refused at parse
    time, not after training)."""
    def parse(text: str) -> float:
        try:
            return check_real(float(text), "value", interval)
        except (ValueError, FairLinError):
            raise argparse.ArgumentTypeError(f"expected a finite number {interval}".rstrip()
                                             + f", got {brief(text)}") from None
    return parse


def int_list(text: str, flag: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; anything else is a clear error naming ``flag``."""
    try:
        return [int(part) for part in comma_list(text)]
    except ValueError as error:
        raise FairLinError(f"{flag} expects comma-separated integers (e.g. 1,2), got {brief(text)}") from error


def seed_arg(text: str) -> int:
    """argparse ``type`` of a seed flag: an integer from 0 to 2**63 - 1 (see :func:`~fairlin_core.errors.check_seed`)."""
    try:
        return check_seed(int(text))
    except (ValueError, FairLinError):
        raise argparse.ArgumentTypeError(f"expected a seed, a non-negative integer (at most 2**63 - 1), got {brief(text)}") from None


def seed_list(text: str, flag: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``, each a valid seed, at most ``RUN_LIMITS["seeds"]`` of them; anything else is a
    clear error naming ``flag``."""
    seeds = check_many(int_list(text, flag), f"seeds ({flag})", "seeds")
    for seed in seeds:
        check_seed(seed, f"every seed of {flag}")
    return seeds


def budget_list(text: str, flag: str) -> list[str]:
    """``"0.05,2%,500"`` -> ``["0.05", "2%", "500"]``, at most ``RUN_LIMITS["budgets"]`` of them (each resolved
    against the checkpoint later)."""
    return check_many(comma_list(text), f"budgets ({flag})", "budgets")


def add_data_root_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")


def add_data_args(parser: argparse.ArgumentParser, with_seed: bool = True) -> None:
    """--data-root, --seed (optional), --target, --group and repeatable --dataset-option KEY=VALUE."""
    add_data_root_arg(parser)
    if with_seed:
        parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the dataset splits (default 0)")
    parser.add_argument("--target", help="attribute to predict, where the dataset has several")
    parser.add_argument("--group", help="protected-group attribute, where the dataset has several")
    parser.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option, repeatable (e.g. minor_fraction=0.2, shape=moons)")


def add_json_arg(parser: argparse.ArgumentParser, help: str = "print JSON") -> None:
    """The ``--json`` flag of every command that can print its result as JSON (``help``: what it prints)."""
    parser.add_argument("--json", action="store_true", help=help)


def add_import_args(parser: argparse.ArgumentParser, required: bool) -> None:
    """The flags that import a .pth-like file (import-checkpoint; audit when it is given such files)."""
    parser.add_argument("--format", required=required, help="snl, deepreduce, torchvision or state-dict")
    parser.add_argument("--arch", help="zoo architecture the weights belong to (resnet18, resnet34, ...)")
    parser.add_argument("--model-code", metavar="PACKAGE.MODULE:FACTORY",
                        help="build the model with your own factory (runs your Python; state-dict format)")
    parser.add_argument("--model-kwargs", default="{}", help="JSON object of keyword arguments for the factory")
    parser.add_argument("--width", type=int_arg, help="stage-1 width when the file does not show it")
    parser.add_argument("--dataset", required=required, help="dataset the model was trained on")
    parser.add_argument("--num-classes", type=int_arg, help="output classes (default: the dataset's)")
    parser.add_argument("--cull", help="deepreduce: comma-separated culled stages, e.g. 1,2")
    parser.add_argument("--thin", action="store_true", help="deepreduce: post-add ReLUs of kept stages removed")
    parser.add_argument("--stem-stride", type=int_arg, help="deepreduce: 2 for the rho=0.5 stride-2 stem")


def import_kwargs(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The keyword arguments of ``checkpoints.importers.import_checkpoint`` given by :func:`add_import_args`
    (``seed``: of the dataset splits)."""
    factory_kwargs = parse_json(args.model_kwargs, "--model-kwargs", "a JSON object of keyword arguments")
    if args.model_code:
        arch, model_options = "code", {"factory": args.model_code, "kwargs": factory_kwargs}
    else:
        arch, model_options = args.arch, ({"width": args.width} if args.width else {})
    format_options: dict[str, Any] = {}
    if args.cull:
        format_options["cull"] = int_list(args.cull, "--cull")
    if args.thin:
        format_options["thin"] = True
    if args.stem_stride:
        format_options["stem_stride"] = args.stem_stride
    return {"fmt": args.format, "arch": arch, "dataset": args.dataset,
            "dataset_options": dataset_options(args), "num_classes": args.num_classes,
            "seed": seed, "data_root": args.data_root, "model_options": model_options,
            "format_options": format_options}


def add_overwrite_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """--overwrite: replace ``what`` (without it, finished results at the output are refused before any work)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} (without it the command refuses before any work starts)")


def print_notes(notes: list[str]) -> None:
    """One ``note: ...`` line on stderr per note (e.g. duplicate inputs that were merged)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
