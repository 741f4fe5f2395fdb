"""Command-line interface: ``python -m fairlin_core COMMAND ...`` (same engine as the dashboard).

Every command takes ``--help``. Bad input exits with code 2 and one line on stderr saying what was
wrong and what was expected; ``--json`` output shapes are a contract scripts rely on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from .audit import add_audit_command
from .audit_grid import add_default_audit_command
from .errors import FairLinError
from .jobs.commands import add_jobs_commands
from .toy_cli import add_toy_command
from .runtime import Progress


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line on stderr with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, allow_nan=False, default=float))


def _parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with value parsed as JSON when it is JSON (numbers, booleans), else a string."""
    if "=" not in text:
        raise FairLinError(f"dataset option {text!r} is not of the form key=value (e.g. minor_fraction=0.2)")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


class TqdmProgress:
    """A progress callback drawing one tqdm bar on stderr."""

    def __init__(self, description: str) -> None:
        self.bar = tqdm(total=1000, desc=description, file=sys.stderr, leave=False,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}")

    def __call__(self, update: Progress) -> None:
        self.bar.set_postfix_str(update.message, refresh=False)
        self.bar.update(int(update.fraction * 1000) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _add_data_args(parser: argparse.ArgumentParser, with_seed: bool = True) -> None:
    parser.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    if with_seed:
        parser.add_argument("--seed", type=int, default=0, help="seed of the dataset splits (default 0)")
    parser.add_argument("--target", help="attribute to predict, where the dataset has several")
    parser.add_argument("--group", help="protected-group attribute, where the dataset has several")
    parser.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option, repeatable (e.g. minor_fraction=0.2, shape=moons)")


def cmd_datasets(args: argparse.Namespace) -> None:
    from .data import list_datasets
    rows = list_datasets(args.data_root)
    if args.json:
        _print_json(rows)
        return
    for row in rows:
        print(f"{row['name']:10s} {'available' if row['available'] else 'missing':10s} {row['reason']}")


def cmd_dataset_info(args: argparse.Namespace) -> None:
    from .data import load_dataset
    options = dict(_parse_option(o) for o in args.dataset_option)
    bundle = load_dataset(args.name, data_root=args.data_root, seed=args.seed, target=args.target,
                          group=args.group, **options)
    info = bundle.describe()
    if args.json:
        _print_json(info)
        return
    print(f"{info['name']}: target {info['target']}, group {info['group']}, skipped files {info['skipped']}")
    for split, counts in info["splits"].items():
        print(f"  {split:9s} " + "  ".join(f"{g}={n}" for g, n in counts.items()))


def cmd_relu_count(args: argparse.Namespace) -> None:
    from .linearize import DeepReduceConfig, apply_deepreduce
    from .models import build_model, relu_count, resolve_spec, site_table
    if args.input_size < 1:
        raise FairLinError(f"--input-size must be a positive integer, got {args.input_size}")
    spec = resolve_spec(args.model, args.num_classes, _input_shape(args.model, args.input_size, args.channels),
                        width=args.width, depth=args.depth, stem_stride=args.stem_stride)
    model = build_model(spec)
    cull = _int_list(args.cull, "--cull") if args.cull else ()
    if cull or args.thin:
        apply_deepreduce(model, DeepReduceConfig(tuple(cull), args.thin))
    table = site_table(model)
    result = {"relu_count": relu_count(model), "model": spec.to_dict(),
              "per_site": table.to_dict(orient="records")}
    if args.json:
        _print_json(result)
    else:
        print(table.to_string(index=False))
        print(f"ReLU count: {result['relu_count']}")


def _input_shape(model: str, input_size: int, channels: int) -> tuple[int, ...]:
    return (input_size,) if model == "mlp" else (channels, input_size, input_size)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise FairLinError(f"{flag} expects comma-separated integers (e.g. 1,2), got {text!r}") from error


def cmd_train_base(args: argparse.Namespace) -> None:
    from .base_training import train_base
    from .checkpoints import save_checkpoint
    from .data import load_dataset
    from .evaluation import base_sidecar_metadata
    from .models import resolve_spec
    options = dict(_parse_option(o) for o in args.dataset_option)
    bundle = load_dataset(args.dataset, data_root=args.data_root, seed=args.seed, target=args.target,
                          group=args.group, **options)
    model_options = {"width": args.width, "depth": args.depth, "stem_stride": args.stem_stride}
    resolve_spec(args.model, bundle.num_classes, bundle.input_shape, **model_options)  # fail before training
    bar = TqdmProgress(f"train {args.model} on {args.dataset}")
    start = time.perf_counter()
    try:
        model, spec, config, history = train_base(bundle, args.model, model_options=model_options,
                                                  epochs=args.epochs, seed=args.seed, progress=bar)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    metadata = base_sidecar_metadata(model, bundle, seed=args.seed, config=config, history=history,
                                     train_seconds=seconds)
    path = save_checkpoint(args.out, model, spec, metadata)
    result = {"checkpoint": str(path), "train_seconds": round(seconds, 2), **metadata["evaluation"]}
    if args.json:
        _print_json(result)
    else:
        print(f"wrote {path} ({seconds:.1f} s); test accuracy {result['overall_accuracy']:.4f}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_checkpoint
    result = evaluate_checkpoint(args.checkpoint, data_root=args.data_root, split=args.split)
    if args.json:
        _print_json(result)
        return
    print(f"{result['checkpoint']} on {result['dataset']} [{result['split']}]: "
          f"overall {result['overall_accuracy']:.4f}, ReLUs {result['relu_count']}")
    for row in result["groups"]:
        print(f"  {row['group']:>10s}  n={row['n']:<6d} accuracy={row['accuracy']:.4f}")


def _linearize_options(args: argparse.Namespace):
    from .finetune import FinetuneConfig
    from .linearize import DeepReduceConfig, LinearizeOptions, SNLConfig
    snl = SNLConfig(**{k: v for k, v in {"epochs": args.snl_epochs, "mask_lr": args.mask_lr, "lam": args.lam, "lam_min_progress": args.lam_min_progress}.items()
                       if v is not None})
    tune = FinetuneConfig(**{k: v for k, v in {"epochs": args.finetune_epochs, "lr": args.finetune_lr,
                                               "temperature": args.temperature, "kd_weight": args.kd_weight,
                                               "ce_weight": args.ce_weight}.items() if v is not None})
    deepreduce = None
    if args.cull is not None or args.thin or args.stem_stride is not None:
        if args.method != "deepreduce":
            raise FairLinError("--cull, --thin and --stem-stride configure deepreduce; expected --method deepreduce")
        deepreduce = DeepReduceConfig(tuple(_int_list(args.cull or "", "--cull")), args.thin, args.stem_stride or 1)
    return LinearizeOptions(snl=snl, finetune=tune, exact=not args.reference_budget, deepreduce=deepreduce)


def _checkpoint_and_data(args: argparse.Namespace):
    """The base checkpoint and its dataset (or the one named by --dataset, checked for compatibility)."""
    from .checkpoints import load_checkpoint
    from .data import load_dataset
    from .evaluation import load_dataset_for
    checkpoint = load_checkpoint(args.checkpoint)
    if args.dataset:
        options = dict(_parse_option(o) for o in args.dataset_option)
        bundle = load_dataset(args.dataset, data_root=args.data_root, seed=args.data_seed, target=args.target,
                              group=args.group, **options)
    else:
        bundle = load_dataset_for(checkpoint.sidecar, args.data_root, group=getattr(args, "protect", None))
    spec = checkpoint.spec
    if tuple(bundle.input_shape) != tuple(spec.input_shape) or bundle.num_classes != spec.num_classes:
        raise FairLinError(f"checkpoint {checkpoint.path} expects input {tuple(spec.input_shape)} with "
                           f"{spec.num_classes} classes, but dataset {bundle.name} has input {bundle.input_shape} "
                           f"with {bundle.num_classes} classes; expected the dataset the checkpoint was trained on")
    return checkpoint, bundle


def _mitigation(args: argparse.Namespace):
    from .finetune import MitigationConfig
    config = MitigationConfig(**{k: v for k, v in {"mu": args.mu, "tolerance": args.tolerance}.items()
                                 if v is not None})
    config.validate()
    return config


def cmd_linearize(args: argparse.Namespace) -> None:
    from .finetune import mitigation_factory
    from .linearize import linearize
    from .linearize.output import result_summary, save_linearized
    options = _linearize_options(args)
    if not args.mitigate and (args.mu is not None or args.tolerance is not None):
        raise FairLinError("--mu and --tolerance configure mitigation; expected --mitigate with them")
    mitigation = _mitigation(args) if args.mitigate else None
    checkpoint, bundle = _checkpoint_and_data(args)
    bar = TqdmProgress(f"{args.method} to {args.budget}")
    try:
        result = linearize(checkpoint.model, checkpoint.spec, bundle, args.method, args.budget, options=options,
                           seed=args.seed, progress=bar,
                           objective_factory=mitigation_factory(bundle.group_names, mitigation))
    finally:
        bar.close()
    path = save_linearized(result, args.out, bundle, base_checkpoint=checkpoint.path,
                           extra={"mitigation": mitigation.to_dict() if mitigation else None})
    summary = {**result_summary(result), "mitigation": mitigation.to_dict() if mitigation else None,
               "checkpoint": str(path)}
    if args.json:
        _print_json(summary)
        return
    print(f"wrote {path}: {summary['relu_count']} of {summary['base_relu_count']} ReLUs, test accuracy "
          f"{summary['overall_accuracy']:.4f} (base {summary['base_overall_accuracy']:.4f})")
    for row in summary["groups"]:
        print(f"  {row['group']:>10s}  n={row['n']:<6d} accuracy={row['accuracy']:.4f}  base={row['base_accuracy']:.4f}")


def cmd_compare(args: argparse.Namespace) -> None:
    from .compare import comparison_json, run_comparison
    from .finetune import mitigation_factory
    options = _linearize_options(args)
    mitigation = _mitigation(args)
    checkpoint, bundle = _checkpoint_and_data(args)
    budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
    seeds = _int_list(args.seeds, "--seeds")
    variants = {"unmitigated": (None, None), "mitigated": (mitigation_factory(bundle.group_names, mitigation), None)}
    bar = TqdmProgress(f"compare {args.method}")
    try:
        comparison = run_comparison(checkpoint.model, checkpoint.spec, bundle, args.method, budgets, seeds, variants,
                                    options=options, splits=(args.split,), progress=bar)
    finally:
        bar.close()
    if args.out:
        from pathlib import Path
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("runs", "rows", "summary"):
            getattr(comparison, name).to_csv(out / f"{name}.csv", index=False)
    result = {**comparison_json(comparison, args.split), "mitigation": mitigation.to_dict()}
    if args.json:
        _print_json(result)
        return
    print(comparison.summary.to_string(index=False))


def _add_linearize_args(p: argparse.ArgumentParser) -> None:
    """Options shared by linearize and compare: SNL, finetune, DeepReDuce, mitigation, data."""
    p.add_argument("--snl-epochs", type=int, help="maximum SNL epochs (default 100)")
    p.add_argument("--mask-lr", type=float, help="Adam learning rate of the SNL masks (default 2e-2; reference 1e-3)")
    p.add_argument("--lam", type=float, help="initial SNL L1 weight lambda (default 3e-3; reference 1e-5)")
    p.add_argument("--lam-min-progress", type=float,
                   help="SNL grows lambda when an epoch cuts the ReLU count by less than this fraction "
                        "(default 0.1; reference 0: only when it stalls)")
    p.add_argument("--reference-budget", action="store_true",
                   help="SNL: binarise with alpha > 1e-2 like the reference (may undershoot) instead of exact top-k")
    p.add_argument("--finetune-epochs", type=int, help="finetune epochs after linearizing (default 20)")
    p.add_argument("--finetune-lr", type=float, help="finetune SGD learning rate (default 1e-3)")
    p.add_argument("--temperature", type=float, help="KD temperature (default 4)")
    p.add_argument("--kd-weight", type=float, help="weight of the KD term (default 1)")
    p.add_argument("--ce-weight", type=float, help="weight of the cross-entropy term (default 1)")
    p.add_argument("--cull", help="deepreduce: stages to cull, e.g. 1,2 (default: nearest configuration to the budget)")
    p.add_argument("--thin", action="store_true", help="deepreduce: thin the kept stages")
    p.add_argument("--stem-stride", type=int, choices=[1, 2], help="deepreduce: stem stride of the student")
    p.add_argument("--mu", type=float, help="mitigation: Lagrange multiplier step size (default 0.01)")
    p.add_argument("--tolerance", type=float, help="mitigation: group-loss violations up to this are free (default 0)")
    p.add_argument("--protect", help="group attribute to protect, if not the checkpoint's (e.g. age on utkface)")
    p.add_argument("--dataset", help="use this dataset instead of the checkpoint's (must match its classes and input)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the --dataset splits (default 0)")
    _add_data_args(p, with_seed=False)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m fairlin_core",
                     description="FairLin: audit the fairness cost of ReLU linearization for private inference.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("datasets", help="list the datasets and whether their files are present")
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("dataset-info", help="group names and group sizes per split of one dataset")
    p.add_argument("name", help="dataset name (see the datasets command)")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_dataset_info)

    p = sub.add_parser("relu-count", help="exact ReLU count of a model, optionally with a DeepReDuce configuration")
    p.add_argument("--model", required=True, help="resnet18, resnet34, vgg19_bn, wrn22_8 or mlp")
    p.add_argument("--input-size", type=int, required=True, help="image side in pixels (features for mlp)")
    p.add_argument("--channels", type=int, default=3, help="input channels (default 3)")
    p.add_argument("--num-classes", type=int, default=10, help="output classes (default 10)")
    p.add_argument("--width", type=int, help="width (ResNet/VGG: stage-1 channels; WRN: widen factor; MLP: units)")
    p.add_argument("--depth", type=int, help="hidden layers (mlp only)")
    p.add_argument("--stem-stride", type=int, help="1 or 2 (ResNets; 2 is DeepReDuce's rho=0.5)")
    p.add_argument("--cull", help="DeepReDuce: comma-separated stages whose ReLUs are all removed, e.g. 1,2")
    p.add_argument("--thin", action="store_true", help="DeepReDuce: remove the post-add ReLU of kept stages")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_relu_count)

    p = sub.add_parser("train-base", help="train a base model and write safetensors + JSON sidecar")
    p.add_argument("--dataset", required=True, help="dataset name")
    p.add_argument("--model", required=True, help="resnet18, resnet34, vgg19_bn, wrn22_8 or mlp")
    p.add_argument("--width", type=int, help="model width (see relu-count --help)")
    p.add_argument("--depth", type=int, help="hidden layers (mlp only)")
    p.add_argument("--stem-stride", type=int, help="1 or 2 (ResNets)")
    p.add_argument("--epochs", type=int, help="epochs (default 30 for images, 2000 full-batch steps for mlp)")
    p.add_argument("--out", required=True, help="output path NAME.safetensors (NAME.json is written beside it)")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_train_base)

    p = sub.add_parser("linearize", help="linearize a base checkpoint to a ReLU budget (snl, deepreduce, random)")
    p.add_argument("--checkpoint", required=True, help="base checkpoint (.safetensors, its .json, or a folder)")
    p.add_argument("--method", required=True, choices=["snl", "deepreduce", "random"], help="linearizer")
    p.add_argument("--budget", required=True,
                   help="ReLUs to keep: a count (500), a fraction of the base count (0.1) or a percentage (10%%)")
    p.add_argument("--out", required=True, help="output folder (model.safetensors + model.json are written)")
    p.add_argument("--seed", type=int, default=0, help="seed of SNL, random placement and finetuning (default 0)")
    p.add_argument("--mitigate", action="store_true", help="fairness-constrained finetune (the paper's Algorithm 1)")
    _add_linearize_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_linearize)

    p = sub.add_parser("compare", help="mitigated vs unmitigated finetune on the same masks, across budgets and seeds")
    p.add_argument("--checkpoint", required=True, help="base checkpoint (.safetensors, its .json, or a folder)")
    p.add_argument("--method", required=True, choices=["snl", "deepreduce", "random"], help="linearizer")
    p.add_argument("--budgets", required=True, help="comma-separated budgets, e.g. 0.05,0.02,0.01")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--split", default="test", help="split the accuracies are reported on (default test)")
    p.add_argument("--out", help="folder for runs.csv, rows.csv and summary.csv")
    _add_linearize_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_compare)

    add_audit_command(sub)
    add_jobs_commands(sub)
    add_toy_command(sub)
    add_default_audit_command(sub)

    p = sub.add_parser("evaluate", help="per-group accuracy of a checkpoint (base or linearized)")
    p.add_argument("--checkpoint", required=True, help="a .safetensors file, its .json sidecar, or a folder with one")
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    p.add_argument("--split", default="test", help="train, val, test or balanced (default test)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FairLinError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
