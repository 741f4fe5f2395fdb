"""CLI command ``cost``: the estimated private-inference cost of a checkpoint under a protocol profile.

``--json`` prints ``{"checkpoint", "profile": {name, title, source, assumptions, values}, "totals":
{relu_count, relu_sites, macs, online_mb, offline_mb, online_compute_s, offline_compute_s, online_latency_s,
offline_latency_s, total_latency_s}, "layers": [{layer, kind, input_elements, output_elements, macs,
relu_sites, relus, online_mb, ...}]}``.
"""

from __future__ import annotations

import argparse

from ..checkpoints import load_checkpoint
from ..costs import cost, list_profiles
from ..costs.profiles import DEFAULT_PROFILE
from .common import add_json_arg, print_json


def cmd_cost(args: argparse.Namespace) -> None:
    checkpoint = load_checkpoint(args.checkpoint)
    result = cost(checkpoint, args.profile)
    if args.json:
        print_json({"checkpoint": str(checkpoint.path), **result.to_dict()})
        return
    columns = ["layer", "kind", "macs", "relus", "online_mb", "offline_mb", "online_latency_s", "offline_latency_s"]
    print(result.layers[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    t = result.totals
    print(f"{result.profile.name}: {t['relu_count']:,} of {t['relu_sites']:,} ReLUs, {t['macs']:,} MACs; online "
          f"{t['online_mb']:.4g} MB, {t['online_latency_s']:.4g} s; offline {t['offline_mb']:.4g} MB, "
          f"{t['offline_latency_s']:.4g} s")
    for field, reason in result.profile.assumptions.items():
        print(f"assumption {field}: {reason}")


def configure_cost(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a checkpoint (.safetensors with its .json sidecar)")
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help=f"protocol profile: {', '.join(list_profiles())} (default {DEFAULT_PROFILE}), or the path "
                        f"of a profile JSON file of your own")
    add_json_arg(p)
    p.set_defaults(func=cmd_cost)
