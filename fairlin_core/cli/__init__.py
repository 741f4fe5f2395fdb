"""Command-line interface: ``fairlin COMMAND ...`` (or ``python -m fairlin_core COMMAND ...``), same engine as the dashboard.

Every command takes ``--help``. Bad input exits with code 2 and one line on stderr saying what was
wrong and what was expected; ``--json`` output shapes are a contract scripts rely on.

One module per command group (:mod:`.data`, :mod:`.importing`, :mod:`.linearize`, :mod:`.audit`, :mod:`.jobs`,
:mod:`.toy`, :mod:`.cost`), each with a ``configure_<command>(parser)`` per command. Only the module of the command being run is
imported, so ``fairlin --help`` and argument errors come back without importing torch. A command run with
``--executor ray`` drives Ray from a child process this one supervises (:mod:`.ray_driver`).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from collections.abc import Sequence

from ..errors import ECHO_LIMIT, FairLinError, brief, clip, one_line
from ..runtime import trust_model_code

# command -> (module under fairlin_core.cli, one-line help); the order is the order of ``--help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "datasets": ("data", "list the datasets and whether their files are present"),
    "dataset-info": ("data", "group names and group sizes per split of one dataset"),
    "relu-count": ("data", "exact ReLU count of a model, optionally with a DeepReDuce configuration"),
    "import-checkpoint": ("importing", "import a .pth/.pth.tar/.pt/.bin/.safetensors checkpoint (snl, deepreduce, "
                                       "torchvision, state-dict layouts) as a FairLin checkpoint"),
    "train-base": ("data", "train a base model and write safetensors + JSON sidecar"),
    "linearize": ("linearize", "linearize a base checkpoint to a ReLU budget (snl, deepreduce, random)"),
    "compare": ("linearize", "mitigated vs unmitigated finetune on the same masks, across budgets and seeds"),
    "audit": ("audit", "per-group diagnostics of a linearized model against its base model"),
    "sweep": ("jobs", "queue and run every method x budget x seed x mitigation combination; "
                      "re-running skips what is done and resumes what was interrupted"),
    "runs": ("jobs", "list the runs in the store, or `runs show ID` for one run with its tables"),
    "toy": ("toy", "2D toy: ReLU MLP vs the same MLP with a share of its ReLUs linearized, "
                   "per-group test accuracy over seeds"),
    "default-audit": ("audit", "run the full audit grid (methods x budgets x seeds x mitigation off/on, "
                               "diagnostics on the first seed) into a results folder; resumable"),
    "evaluate": ("data", "per-group accuracy of a checkpoint (base or linearized)"),
    "cost": ("cost", "estimated private-inference communication (MB) and latency (s), online and offline, per "
                     "layer and in total, under a protocol profile"),
}


TORCH_MODULES = r"torch(vision)?(\.|$)"  # modules whose UserWarnings a CLI run does not show

# what else argparse's messages may echo of the user's input (an ambiguous option with its value, an ignored
# explicit argument): quoted values and runs without spaces; an echo already cut (it holds "…") stays as it is
_ECHOED = re.compile(r"'[^'…]{%d,}'|\"[^\"…]{%d,}\"|[^\s…]{%d,}" % ((ECHO_LIMIT - 1,) * 2 + (ECHO_LIMIT + 1,)))


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line on stderr with exit code 2, every echo of the user's input
    (argparse's own too: invalid choices, unrecognized arguments) cut to 80 characters like
    :func:`~fairlin_core.errors.brief`; the flag types of :mod:`.common` cut theirs the same way."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {clip(' '.join(extra))}")
        return parsed

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """argparse's choices check (its one hook for it), echoing ``value`` through ``brief``."""
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, f"invalid choice: {brief(value)} (choose from "
                                                 f"{', '.join(map(repr, action.choices))})")

    def error(self, message: str) -> None:  # type: ignore[override]
        clipped = _ECHOED.sub(lambda echo: clip(echo.group()), message)
        self.exit(2, f"{self.prog}: error: {one_line(clipped, 300)} (see --help)\n")


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first word that is a command), if any."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; every command's own arguments when ``command`` is None, else only that command's
    (the other commands are listed with their help but their modules are not imported)."""
    parser = _Parser(prog="fairlin",
                     description="FairLin: audit the fairness cost of ReLU linearization for private inference.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            configure = getattr(importlib.import_module(f"{__name__}.{module}"), f"configure_{name.replace('-', '_')}")
            configure(p)
            p.add_argument("--trust-model-code", action="append", default=[], metavar="MODULE:FUNCTION",
                           help="run this model factory when a checkpoint's sidecar names it (checkpoints "
                                "imported with --model-code); repeatable. Sidecars alone are never trusted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 when it succeeded, 2 (one line on stderr) for bad input, 130 when interrupted. The
    UserWarnings of torch and torchvision are not shown (stderr lines a user cannot act on, breaking the one-line
    contract of bad input); the project's own and other libraries' are."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _chosen(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=TORCH_MODULES)
        parser = build_parser(command) if command else build_parser("")
        return _run(parser.parse_args(argv), argv)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    """``args.func(args)`` with bad input turned into one line on stderr and exit code 2; with ``--executor ray``
    the command first runs in a supervised child process (``argv`` again, see :mod:`.ray_driver`)."""
    try:
        trust_model_code(*args.trust_model_code)  # only factories the user names: a sidecar is never trusted
        if getattr(args, "executor", None) == "ray":
            from .ray_driver import supervised  # the Ray driver runs as a child of this process
            code = supervised(argv)
            if code is not None:
                return code
        args.func(args)
    except FairLinError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
