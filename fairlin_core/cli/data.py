"""CLI commands on data and models: ``datasets``, ``dataset-info``, ``relu-count``, ``train-base``, ``evaluate``."""

from __future__ import annotations

import argparse

from ..audits.evaluation import evaluate_checkpoint
from ..checkpoints import load_checkpoint
from ..data import list_datasets, load_dataset
from ..errors import FairLinError
from ..linearizers import DeepReduceConfig, apply_deepreduce
from ..models import build_model, relu_count, resolve_spec, site_table
from ..train import train_base_checkpoint
from .common import (add_data_args, add_json_arg, add_overwrite_arg, count_arg, dataset_options, int_arg, int_list,
                     print_json)
from .progress import TqdmProgress


def cmd_datasets(args: argparse.Namespace) -> None:
    rows = list_datasets(args.data_root)
    if args.json:
        print_json(rows)
        return
    for row in rows:
        print(f"{row['name']:10s} {'available' if row['available'] else 'missing':10s} {row['reason']}")


def cmd_dataset_info(args: argparse.Namespace) -> None:
    bundle = load_dataset(args.name, data_root=args.data_root, seed=args.seed, target=args.target,
                          group=args.group, **dataset_options(args))
    info = bundle.describe()
    if args.json:
        print_json(info)
        return
    print(f"{info['name']}: target {info['target']}, group {info['group']}, skipped files {info['skipped']}")
    for split, counts in info["splits"].items():
        print(f"  {split:9s} " + "  ".join(f"{g}={n}" for g, n in counts.items()))


def cmd_relu_count(args: argparse.Namespace) -> None:
    if args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint)  # its weights and masks only: no data needed
        spec, model = checkpoint.spec, checkpoint.model
    elif args.model and args.input_size is not None:
        spec = resolve_spec(args.model, args.num_classes, _input_shape(args.model, args.input_size, args.channels),
                            width=args.width, depth=args.depth, stem_stride=args.stem_stride, stem=args.stem)
        model = build_model(spec)
    else:
        raise FairLinError("give --checkpoint, or --model and --input-size")
    cull = int_list(args.cull, "--cull") if args.cull else ()
    if cull or args.thin:
        apply_deepreduce(model, DeepReduceConfig(tuple(cull), args.thin))
    table = site_table(model)
    result = {"relu_count": relu_count(model), "model": spec.to_dict(),
              "per_site": table.to_dict(orient="records")}
    if args.json:
        print_json(result)
    else:
        print(table.to_string(index=False))
        print(f"ReLU count: {result['relu_count']}")


def _input_shape(model: str, input_size: int, channels: int) -> tuple[int, ...]:
    return (input_size,) if model == "mlp" else (channels, input_size, input_size)


def cmd_train_base(args: argparse.Namespace) -> None:
    bar = TqdmProgress(f"train {args.model} on {args.dataset}")
    try:
        path, result = train_base_checkpoint(
            args.dataset, args.model, out=args.out, epochs=args.epochs, seed=args.seed, data_root=args.data_root,
            target=args.target, group=args.group, dataset_options=dataset_options(args),
            model_options={"width": args.width, "depth": args.depth, "stem_stride": args.stem_stride}, progress=bar,
            overwrite=args.overwrite)
    finally:
        bar.close()
    if args.json:
        print_json(result)
    else:
        print(f"wrote {path} ({result['train_seconds']:.1f} s); test accuracy {result['overall_accuracy']:.4f}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    result = evaluate_checkpoint(args.checkpoint, data_root=args.data_root, split=args.split)
    if args.json:
        print_json(result)
        return
    print(f"{result['checkpoint']} on {result['dataset']} [{result['split']}]: "
          f"overall {result['overall_accuracy']:.4f}, ReLUs {result['relu_count']}")
    for row in result["groups"]:
        print(f"  {row['group']:>10s}  n={row['n']:<6d} accuracy={row['accuracy']:.4f}")


def configure_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    add_json_arg(p)
    p.set_defaults(func=cmd_datasets)


def configure_dataset_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset name (see the datasets command)")
    add_data_args(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_dataset_info)


def configure_relu_count(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="count a checkpoint's model (with its masks) instead of --model")
    p.add_argument("--model", help="resnet18, resnet34, vgg19_bn, wrn22_8 or mlp")
    p.add_argument("--input-size", type=int_arg, help="image side in pixels (features for mlp)")
    p.add_argument("--channels", type=int_arg, default=3, help="input channels (default 3)")
    p.add_argument("--num-classes", type=int_arg, default=10, help="output classes (default 10)")
    p.add_argument("--width", type=int_arg, help="width (ResNet/VGG: stage-1 channels; WRN: widen factor; MLP: units)")
    p.add_argument("--depth", type=int_arg, help="hidden layers (mlp only)")
    p.add_argument("--stem-stride", type=int_arg, help="1 or 2 (ResNets; 2 is DeepReDuce's rho=0.5)")
    p.add_argument("--stem", choices=("cifar", "imagenet"),
                   help="ResNets: cifar (default; 3x3, no stem ReLU) or imagenet (torchvision's 7x7 stem + ReLU)")
    p.add_argument("--cull", help="DeepReDuce: comma-separated stages whose ReLUs are all removed, e.g. 1,2")
    p.add_argument("--thin", action="store_true", help="DeepReDuce: remove the post-add ReLU of kept stages")
    add_json_arg(p)
    p.set_defaults(func=cmd_relu_count)


def configure_train_base(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset name")
    p.add_argument("--model", required=True, help="resnet18, resnet34, vgg19_bn, wrn22_8 or mlp")
    p.add_argument("--width", type=int_arg, help="model width (see relu-count --help)")
    p.add_argument("--depth", type=int_arg, help="hidden layers (mlp only)")
    p.add_argument("--stem-stride", type=int_arg, help="1 or 2 (ResNets)")
    p.add_argument("--epochs", type=count_arg("epochs"),
                   help="epochs (default 30 for images, 2000 full-batch steps for mlp)")
    p.add_argument("--out", required=True, help="output path NAME.safetensors (NAME.json is written beside it)")
    add_overwrite_arg(p, "an existing checkpoint at --out")
    add_data_args(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_train_base)


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a .safetensors file, its .json sidecar, or a folder with one")
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    p.add_argument("--split", default="test", help="train, val, test or balanced (default test)")
    add_json_arg(p)
    p.set_defaults(func=cmd_evaluate)
