"""CLI command ``import-checkpoint``: a .pth / .pth.tar / .pt / .bin / .safetensors file as a FairLin checkpoint."""

from __future__ import annotations

import argparse

from ..checkpoints.importers import import_checkpoint
from ..errors import FairLinError
from ..models import site_table
from .common import add_data_args, add_import_args, add_json_arg, add_overwrite_arg, import_kwargs, print_json


def cmd_import_checkpoint(args: argparse.Namespace) -> None:
    kwargs = import_kwargs(args, args.seed)
    if kwargs["arch"] is None:
        raise FairLinError("give --arch (a zoo architecture) or --model-code package.module:factory")
    checkpoint = import_checkpoint(args.source, out=args.out, overwrite=args.overwrite, **kwargs)
    sidecar = checkpoint.sidecar
    result = {"checkpoint": str(checkpoint.path), "kind": sidecar["kind"], "relu_count": sidecar["relu_count"],
              "sites": len(site_table(checkpoint.model)), "model": checkpoint.spec.to_dict(),
              "imported_from": sidecar["imported_from"]}
    if args.json:
        print_json(result)
    else:
        print(f"wrote {result['checkpoint']} ({result['kind']}, {checkpoint.spec.name} {checkpoint.spec.options}, "
              f"{result['sites']} sites, {result['relu_count']} ReLUs) from {args.source} ({args.format})")
        files = result["imported_from"]["dataset_files"]
        if files != "read":
            print(f"note: the dataset's files are {files}")


def configure_import_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="file to import: .pth, .pth.tar, .pt, .bin (read with torch.load(weights_only=True)) "
                                  "or .safetensors")
    add_import_args(p, required=True)
    add_data_args(p)
    p.add_argument("--out", required=True, help="NAME.safetensors to write (its NAME.json sidecar beside it)")
    add_overwrite_arg(p, "a checkpoint already at --out")
    add_json_arg(p, "print the result as JSON")
    p.set_defaults(func=cmd_import_checkpoint)
