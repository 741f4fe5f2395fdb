"""CLI commands that linearize: ``linearize`` (one budget) and ``compare`` (mitigated vs unmitigated, over seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..audits.comparison import COMPARISON_TABLES, comparison_json, mitigated_variants, run_comparison
from ..checkpoints import load_checkpoint
from ..data import load_dataset
from ..errors import FairLinError
from ..finetune import MitigationConfig, mitigation_names
from ..finetune.fair import NONE
from ..finetune.selection import SELECTIONS
from ..linearizers import METHODS, DeepReduceConfig, LinearizeOptions, LinearizeRecipe, linearize, unique_budgets
from ..linearizers.output import LINEARIZED_FILES, result_summary, save_linearized
from ..models import relu_count
from ..outputs import prepare_output
from ..runtime import PRECISIONS, merge_duplicates
from ..limits import FRACTION, NON_NEGATIVE, POSITIVE, PROPER_FRACTION
from .common import (add_data_args, add_json_arg, add_overwrite_arg, budget_list, count_arg, dataset_options, float_arg,
                     int_arg, int_list, print_json, print_notes, seed_arg, seed_list)
from .progress import TqdmProgress

DEFAULTS = LinearizeRecipe()  # the flags' defaults, as the help states them


def recipe_from_args(args: argparse.Namespace, *, budget: Any = None, seed: int | None = None,
                     mitigation_default: str = NONE) -> LinearizeRecipe:
    """The recipe of the linearize / compare flags (SNL and finetune options, --mitigation and its options,
    --precision), validated before any progress bar (SNL's options too when the method is not snl); budget and
    seed: linearize's (compare's budgets and seeds are its axes, the recipe keeps its defaults)."""
    snl = {"epochs": args.snl_epochs, "mask_lr": args.mask_lr, "lam": args.lam,
           "lam_min_progress": args.lam_min_progress}
    tune = {"epochs": args.finetune_epochs, "lr": args.finetune_lr, "temperature": args.temperature,
            "kd_weight": args.kd_weight, "ce_weight": args.ce_weight, "select": args.select,
            "select_tolerance": args.select_tolerance}
    given = {"method": args.method, "budget": budget, "seed": seed, "precision": args.precision,
             "snl": {k: v for k, v in snl.items() if v is not None},
             "finetune": {k: v for k, v in tune.items() if v is not None},
             "mitigation": mitigation_from_args(args, mitigation_default)}
    return LinearizeRecipe.from_dict({k: v for k, v in given.items() if v is not None or k == "mitigation"})


def _placement(args: argparse.Namespace) -> LinearizeOptions:
    """The placement choices no recipe holds: --reference-budget (SNL's threshold rule) and a DeepReDuce
    configuration (--cull, --thin, --stem-stride)."""
    deepreduce = None
    if args.cull is not None or args.thin or args.stem_stride is not None:
        if args.method != "deepreduce":
            raise FairLinError("--cull, --thin and --stem-stride configure deepreduce; expected --method deepreduce")
        deepreduce = DeepReduceConfig(tuple(int_list(args.cull or "", "--cull")), args.thin, args.stem_stride or 1)
    return LinearizeOptions(exact=not args.reference_budget, deepreduce=deepreduce)


def _checkpoint_and_data(args: argparse.Namespace, data_options: dict[str, Any]):
    """The base checkpoint and its dataset (or the one named by --dataset with ``data_options``, checked for
    compatibility)."""
    checkpoint = load_checkpoint(args.checkpoint)
    if args.dataset:
        bundle = load_dataset(args.dataset, data_root=args.data_root, seed=args.data_seed, target=args.target,
                              group=args.group, **data_options)
    else:
        bundle = checkpoint.dataset(args.data_root, group=getattr(args, "protect", None))
    return checkpoint, checkpoint.resolve_data(bundle)


def mitigation_from_args(args: argparse.Namespace, default: str = NONE) -> MitigationConfig | None:
    """The MitigationConfig of --mitigation NAME (--mitigate = lagrangian) and its options; None for none."""
    mitigate = getattr(args, "mitigate", False)
    if mitigate and args.mitigation not in (None, "lagrangian"):
        raise FairLinError(f"--mitigate means --mitigation lagrangian, got --mitigation {args.mitigation}; "
                           f"expected one of them")
    name = args.mitigation or ("lagrangian" if mitigate else default)
    given = {k: v for k, v in {"mu": args.mu, "tolerance": args.tolerance, "normalize": args.normalize or None,
                               "lambda_max": args.lambda_max, "eta": args.eta}.items() if v is not None}
    if name == NONE:
        if given:
            raise FairLinError(f"--{', --'.join(k.replace('_', '-') for k in given)} configure a mitigation; "
                               f"expected --mitigation {'|'.join(mitigation_names()[1:])} (or --mitigate) with them")
        return None
    return MitigationConfig.coerce({"method": name, **given})


def cmd_linearize(args: argparse.Namespace) -> None:
    recipe = recipe_from_args(args, budget=args.budget, seed=args.seed)
    placement = _placement(args)
    data_options = dataset_options(args)
    prepare_output(args.out, LINEARIZED_FILES, overwrite=args.overwrite)
    checkpoint, bundle = _checkpoint_and_data(args, data_options)
    bar = TqdmProgress(f"{args.method} to {args.budget}")
    try:
        result = linearize(checkpoint.model, checkpoint.spec, bundle, recipe=recipe, options=placement, progress=bar)
    finally:
        bar.close()
    mitigation = recipe.to_dict()["mitigation"]
    path = save_linearized(result, args.out, bundle, base_checkpoint=checkpoint.path, extra={"mitigation": mitigation})
    summary = {**result_summary(result), "mitigation": mitigation, "checkpoint": str(path)}
    if args.json:
        print_json(summary)
        return
    print(f"wrote {path}: {summary['relu_count']} of {summary['base_relu_count']} ReLUs, test accuracy "
          f"{summary['overall_accuracy']:.4f} (base {summary['base_overall_accuracy']:.4f})")
    for row in summary["groups"]:
        print(f"  {row['group']:>10s}  n={row['n']:<6d} accuracy={row['accuracy']:.4f}  base={row['base_accuracy']:.4f}")


def cmd_compare(args: argparse.Namespace) -> None:
    recipe = recipe_from_args(args, mitigation_default="lagrangian")
    if recipe.mitigation is None:
        raise FairLinError("compare sets a mitigated finetune against the plain one; expected --mitigation "
                           f"{'|'.join(mitigation_names()[1:])}, not none")
    placement = _placement(args)
    data_options = dataset_options(args)
    budgets, seeds = budget_list(args.budgets, "--budgets"), seed_list(args.seeds, "--seeds")
    if args.out:
        prepare_output(args.out, [f"{name}.csv" for name in COMPARISON_TABLES], overwrite=args.overwrite)
    checkpoint, bundle = _checkpoint_and_data(args, data_options)
    budgets, budget_notes = unique_budgets(budgets, relu_count(checkpoint.model))
    seeds, seed_notes = merge_duplicates(seeds, "seed")
    print_notes(budget_notes + seed_notes)
    bar = TqdmProgress(f"compare {args.method}")
    try:
        comparison = run_comparison(checkpoint.model, checkpoint.spec, bundle, recipe, budgets, seeds,
                                    mitigated_variants(recipe), options=placement, splits=(args.split,), progress=bar)
    finally:
        bar.close()
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for name in COMPARISON_TABLES:
            getattr(comparison, name).to_csv(Path(args.out) / f"{name}.csv", index=False)
    result = {**comparison_json(comparison, args.split), "mitigation": recipe.to_dict()["mitigation"],
              "notes": budget_notes + seed_notes}
    if args.json:
        print_json(result)
        return
    print(comparison.summary.to_string(index=False))


def _add_linearize_args(p: argparse.ArgumentParser) -> None:
    """Options shared by linearize and compare: SNL, finetune, DeepReDuce, mitigation, data (defaults in the help
    are the recipe's)."""
    snl, tune = DEFAULTS.snl, DEFAULTS.finetune
    p.add_argument("--snl-epochs", type=count_arg("epochs"), help=f"maximum SNL epochs (default {snl.epochs})")
    p.add_argument("--mask-lr", type=float_arg(POSITIVE),
                   help=f"Adam learning rate of the SNL masks (default {snl.mask_lr:g}; reference 1e-3)")
    p.add_argument("--lam", type=float_arg(POSITIVE),
                   help=f"initial SNL L1 weight lambda (default {snl.lam:g}; reference 1e-5)")
    p.add_argument("--lam-min-progress", type=float_arg(PROPER_FRACTION),
                   help=f"SNL grows lambda when an epoch cuts the ReLU count by less than this fraction "
                        f"(default {snl.lam_min_progress:g}; reference 0: only when it stalls)")
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                   help="fp32 (reproducible) or bf16 autocast of SNL and finetune on CUDA (no effect on CPU); "
                        "default %(default)s")
    p.add_argument("--reference-budget", action="store_true",
                   help="SNL: binarise with alpha > 1e-2 like the reference (may undershoot) instead of exact top-k")
    p.add_argument("--finetune-epochs", type=count_arg("epochs", minimum=0),
                   help=f"finetune epochs after linearizing (default {tune.epochs})")
    p.add_argument("--finetune-lr", type=float_arg(POSITIVE), help=f"finetune SGD learning rate (default {tune.lr:g})")
    p.add_argument("--temperature", type=float_arg(POSITIVE), help=f"KD temperature (default {tune.temperature:g})")
    p.add_argument("--kd-weight", type=float_arg(NON_NEGATIVE),
                   help=f"weight of the KD term (default {tune.kd_weight:g})")
    p.add_argument("--ce-weight", type=float_arg(NON_NEGATIVE),
                   help=f"weight of the cross-entropy term (default {tune.ce_weight:g})")
    p.add_argument("--cull", help="deepreduce: stages to cull, e.g. 1,2 (default: nearest configuration to the budget)")
    p.add_argument("--thin", action="store_true", help="deepreduce: thin the kept stages")
    p.add_argument("--stem-stride", type=int_arg, choices=[1, 2], help="deepreduce: stem stride of the student")
    add_mitigation_args(p)
    p.add_argument("--protect", help="group attribute to protect, if not the checkpoint's (e.g. age on utkface)")
    p.add_argument("--dataset", help="use this dataset instead of the checkpoint's (must match its classes and input)")
    p.add_argument("--data-seed", type=seed_arg, default=0, help="seed of the --dataset splits (default 0)")
    add_data_args(p, with_seed=False)


def add_mitigation_args(p: argparse.ArgumentParser) -> None:
    """--mitigation NAME and the mitigations' options (read by :func:`mitigation_from_args`), --select."""
    mitigation, tune = MitigationConfig(), DEFAULTS.finetune
    p.add_argument("--mitigation", metavar="NAME",
                   help=f"finetune objective: {', '.join(mitigation_names())} (linearize: default "
                        f"{DEFAULTS.mitigation_name}; compare: the mitigated variant, default {mitigation.method})")
    p.add_argument("--mu", type=float_arg(POSITIVE),
                   help=f"lagrangian: multiplier step size per epoch (default {mitigation.mu:g})")
    p.add_argument("--tolerance", type=float_arg(NON_NEGATIVE),
                   help=f"lagrangian: group-loss violations up to this are free (default {mitigation.tolerance:g})")
    p.add_argument("--normalize", action="store_true",
                   help="lagrangian: violations relative to the population loss (mu means the same across datasets)")
    p.add_argument("--lambda-max", type=float_arg(POSITIVE), help="lagrangian: cap of the multipliers (default: none)")
    p.add_argument("--eta", type=float_arg(POSITIVE),
                   help=f"groupdro: step size of the group weights per batch (default {mitigation.eta:g})")
    p.add_argument("--select", metavar="RULE",
                   help=f"validation model selection: auto (constrained when mitigated, else overall), "
                        f"{', '.join(SELECTIONS)} (default {tune.select})")
    p.add_argument("--select-tolerance", type=float_arg(FRACTION),
                   help=f"constrained selection: worst-group tolerance, a fraction (default {tune.select_tolerance:g} "
                        f"= {100 * tune.select_tolerance:g} points)")


def configure_linearize(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="base checkpoint (.safetensors, its .json, or a folder)")
    p.add_argument("--method", required=True, choices=METHODS, help="linearizer")
    p.add_argument("--budget", required=True,
                   help="ReLUs to keep: a count (500), a fraction of the base count (0.1) or a percentage (10%%)")
    p.add_argument("--out", required=True, help="output folder (model.safetensors + model.json are written)")
    add_overwrite_arg(p, "a model already in --out")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of SNL, random placement and finetuning (default 0)")
    p.add_argument("--mitigate", action="store_true", help="alias of --mitigation lagrangian (the paper's Algorithm 1)")
    _add_linearize_args(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_linearize)


def configure_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="base checkpoint (.safetensors, its .json, or a folder)")
    p.add_argument("--method", required=True, choices=METHODS, help="linearizer")
    p.add_argument("--budgets", required=True, help="comma-separated budgets, e.g. 0.05,0.02,0.01")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--split", default="test", help="split the accuracies are reported on (default test)")
    p.add_argument("--out", help="folder for runs.csv, rows.csv and summary.csv")
    add_overwrite_arg(p, "those tables already in --out")
    _add_linearize_args(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_compare)
