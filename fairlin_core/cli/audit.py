"""CLI commands that audit: ``audit`` (two checkpoints, per-group diagnostics) and ``default-audit`` (the grid)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from ..audits.core import audit_to_json, per_group_table, run_audit, write_audit_csvs
from ..audits.diagnostics import DIAGNOSTICS, GROUP_KEYS, parse_diagnostics
from ..audits.grid import (DEFAULT_AUDIT_OUT, DEFAULT_BUDGETS, DEFAULT_CHECKPOINT, DEFAULT_TEMPLATE, AuditGrid,
                          build_audit)
from ..finetune import MitigationConfig, mitigation_names
from ..linearizers import METHODS
from ..checkpoints.importers import ensure_checkpoint
from ..jobs.paths import user_checkpoint_dir
from ..jobs.ray_executor import RayChunkRunner
from ..runtime import comma_list
from ..outputs import prepare_output
from ..limits import POSITIVE
from .common import (add_import_args, add_json_arg, add_overwrite_arg, budget_list, count_arg, float_arg, import_kwargs,
                     print_json, print_notes, seed_arg, seed_list)
from .jobs import add_executor_args
from .progress import TqdmProgress


def _print_text(result: dict[str, Any]) -> None:
    """The summary, then one line per group with the headline numbers of every table computed."""
    print(result["summary"].drop(columns=["checkpoint"]).to_string(index=False))
    merged = per_group_table(result, {column for d in DIAGNOSTICS.values() for column in d.headline})
    if len(merged.columns) > len(GROUP_KEYS):
        print()
        print(merged.drop(columns=["group_index"]).to_string(index=False))


def cmd_audit(args: argparse.Namespace) -> None:
    parse_diagnostics(args.diagnostics)  # refuse bad names and outputs before any work starts
    if args.out:
        prepare_output(args.out, ["*.csv"], overwrite=args.overwrite)
    kwargs = import_kwargs(args, args.data_seed)
    store = user_checkpoint_dir()
    base = ensure_checkpoint(args.base, store, **{**kwargs, "format_options": {}})
    linearized = ensure_checkpoint(args.linearized, store, **kwargs)
    bar = TqdmProgress("audit")
    try:
        result = run_audit(base, linearized, split=args.split, diagnostics=args.diagnostics, seed=args.seed,
                           data_root=args.data_root, progress=bar)
    finally:
        bar.close()
    if args.out:
        paths = write_audit_csvs(result, args.out)
        print(f"wrote {len(paths)} tables to {args.out}", file=sys.stderr)
    if args.json:
        print_json(audit_to_json(result))
    else:
        _print_text(result)


def configure_audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="base checkpoint (.safetensors, its .json, or a folder with one); "
                                                 "a .pth/.pth.tar/.pt/.bin is imported on the fly (import flags below)")
    p.add_argument("--linearized", required=True, help="linearized checkpoint of the same architecture and data "
                                                       "(or a file to import, e.g. an SNL result)")
    p.add_argument("--split", default="test", help="train, val, test or balanced (default test)")
    slowest = sorted(DIAGNOSTICS, key=lambda name: -DIAGNOSTICS[name].cost)[:3]
    p.add_argument("--diagnostics", default="accuracy",
                   help=f"comma-separated, from {', '.join(DIAGNOSTICS)} or all (default accuracy; the others "
                        f"are slower, the slowest {', '.join(slowest)})")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the bootstrap and the Lanczos starts (default 0)")
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    add_json_arg(p, "print the per-group tables as JSON")
    p.add_argument("--out", help="folder to write every table as CSV (incl. per-sample tables)")
    imports = p.add_argument_group("importing on the fly", "for --base / --linearized files that are not FairLin "
                                   "checkpoints (as for import-checkpoint; the DeepReDuce options apply to "
                                   "--linearized); they land in the run store's user_checkpoints")
    add_import_args(imports, required=False)
    imports.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                         help="dataset option, repeatable")
    imports.add_argument("--data-seed", type=seed_arg, default=0, help="seed of the dataset splits (default 0)")
    add_overwrite_arg(p, "tables already in --out")
    p.set_defaults(func=cmd_audit)


def cmd_default_audit(args: argparse.Namespace) -> None:
    mitigation = MitigationConfig.coerce(args.mitigation if args.mu is None else {"method": args.mitigation,
                                                                                   "mu": args.mu})
    recipe = replace(DEFAULT_TEMPLATE, mitigation=mitigation).with_epochs(args.snl_epochs, args.finetune_epochs)
    grid = AuditGrid(checkpoint=str(args.checkpoint), methods=tuple(comma_list(args.methods)),
                     budgets=tuple(budget_list(args.budgets, "--budgets")),
                     seeds=tuple(seed_list(args.seeds, "--seeds")), recipe=recipe,
                     diagnostics=tuple(comma_list(args.diagnostics)), detail=tuple(comma_list(args.detail)),
                     diagnostic_seeds=tuple(seed_list(args.diagnostic_seeds, "--diagnostic-seeds")),
                     data_root=args.data_root)
    runner = RayChunkRunner(args.ray_address, args.ray_retries) if args.executor == "ray" else None
    bar = TqdmProgress("audit grid")
    try:
        results = build_audit(grid, args.out, progress=bar, run_chunks=runner, overwrite=args.overwrite,
                              on_notes=print_notes)
    finally:
        bar.close()
        if runner is not None:
            runner.close()
    print(f"wrote {len(results.runs)} runs ({len(results.groups)} group rows) to {args.out}")


def configure_default_audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="base checkpoint (default: shipped digits)")
    p.add_argument("--out", default=DEFAULT_AUDIT_OUT,
                   help=f"results folder (default ./{DEFAULT_AUDIT_OUT}; the shipped results/default_audit only "
                        f"with --overwrite)")
    add_overwrite_arg(p, "a results folder of another grid or checkpoint, or the shipped results")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default snl,deepreduce,random)")
    p.add_argument("--budgets", default=",".join(DEFAULT_BUDGETS), help="comma-separated (default 20%%..0.5%%)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--diagnostic-seeds", default="0", help="seeds whose runs get the diagnostics (default 0)")
    p.add_argument("--diagnostics", default=",".join(AuditGrid.diagnostics),
                   help="diagnostics of those runs (default grad,hessian,boundary,bound)")
    p.add_argument("--detail", default=",".join(AuditGrid.detail),
                   help="costlier diagnostics of their unmitigated runs only (default density,attr; '' = none)")
    template = DEFAULT_TEMPLATE
    p.add_argument("--mitigation", default=template.mitigation_name, metavar="NAME",
                   help=f"method of the mitigated runs: {', '.join(mitigation_names()[1:])} (default %(default)s)")
    p.add_argument("--mu", type=float_arg(POSITIVE),
                   help=f"lagrangian multiplier step (default {template.mitigation.mu:g})")
    p.add_argument("--snl-epochs", type=count_arg("epochs"), help=f"maximum SNL epochs (default {template.snl.epochs})")
    p.add_argument("--finetune-epochs", type=count_arg("epochs", minimum=0),
                   help=f"finetune epochs (default {template.finetune.epochs})")
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    add_executor_args(p)
    p.set_defaults(func=cmd_default_audit)
