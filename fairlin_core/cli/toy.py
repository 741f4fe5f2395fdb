"""``python -m fairlin_core toy ...``: the 2D teaching experiment from the command line.

``--json`` prints the test accuracies (fractions in [0, 1]) per seed and their mean over seeds::

    {"runs": [{"seed": 0, "relu": {"overall", "majority", "minority"}, "linearized": {...}}, ...],
     "mean": {"relu": {"overall", "majority", "minority"}, "linearized": {...}}}
"""

from __future__ import annotations

import argparse
from typing import Any

from ..data.toy2d import SHAPES
from ..errors import FairLinError, brief
from ..limits import FRACTION, NON_NEGATIVE, POSITIVE
from ..runtime import json_ready, json_records
from .common import add_json_arg, budget_list, count_arg, float_arg, int_arg, print_json, seed_arg
from .progress import TqdmProgress
from ..toy import MODEL_KINDS, MODES, WHICH, ToyConfig, ToyResult, run_toy, share_sweep


def toy_json(result: ToyResult) -> dict[str, Any]:
    """The ``--json`` document of a toy run: test accuracy per seed and model, and the mean over seeds."""
    test = result.accuracy[result.accuracy["split"] == "test"]
    runs = []
    for seed in result.seeds:
        rows = test[test["seed"] == seed]
        runs.append({"seed": seed, **{kind: {r.group: json_ready(r.accuracy) for r in rows[rows["model"] == kind]
                                             .itertuples()} for kind in MODEL_KINDS}})
    summary = result.summary("test")
    mean = {kind: {r.group: json_ready(r.mean) for r in summary[summary["model"] == kind].itertuples()}
            for kind in MODEL_KINDS}
    return {"runs": runs, "mean": mean}


def _print_text(result: ToyResult) -> None:
    summary = result.summary("test")
    table = summary.assign(accuracy=[f"{100 * m:5.1f}% ± {100 * s:4.1f}" if s == s else f"{100 * m:5.1f}%"
                                     for m, s in zip(summary["mean"], summary["sd"])])
    wide = table.pivot(index="group", columns="model", values="accuracy")
    print(wide.reindex(index=list(dict.fromkeys(table["group"])), columns=list(MODEL_KINDS)).to_string())
    geometry = result.geometry_summary()[["relu_count", "regions_along_line", "patterns_on_grid"]]
    print()
    print(geometry.round(1).to_string())
    print(f"\ntest accuracy, mean ± sd over {len(result.seeds)} seed(s); "
          f"{result.seconds_per_model():.2f} s per model")


def cmd_toy(args: argparse.Namespace) -> None:
    config = ToyConfig(shape=args.shape, n=args.n, noise=args.noise, minority_ratio=args.minority_ratio,
                       depth=args.depth, width=args.width, steps=args.steps, lr=args.lr, linearized=args.linearized,
                       which=args.which, mode=args.mode)
    config.validate()  # bad input fails before the progress bar is drawn
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.sweep is not None:
        _sweep(config, seeds, args)
        return
    bar = TqdmProgress(f"toy {args.shape}")
    try:
        result = run_toy(config, seeds, progress=bar)
    finally:
        bar.close()
    if args.json:
        print_json(toy_json(result))
    else:
        _print_text(result)


def _sweep(config: ToyConfig, seeds: range, args: argparse.Namespace) -> None:
    """``--sweep``: per-group test accuracy (mean, sd over seeds) at every linearized share."""
    try:
        shares = [float(s) for s in budget_list(args.sweep, "--sweep")]
    except ValueError:
        raise FairLinError(f"--sweep expects comma-separated shares in [0, 1), e.g. 0.1,0.3,0.5; got "
                           f"{brief(args.sweep)}") from None
    bar = TqdmProgress(f"toy {args.shape} sweep")
    try:
        sweep = share_sweep(config, shares, seeds, progress=bar)
    finally:
        bar.close()
    if args.json:
        print_json({"shares": sweep.shares, "seeds": sweep.seeds, "summary": json_records(sweep.summary("test"))})
    else:
        print((100 * sweep.wide("test")).round(1).to_string())
        print(f"\ntest accuracy (%), mean over {len(sweep.seeds)} seed(s), by share of hidden units linearized")


def configure_toy(p: argparse.ArgumentParser) -> None:
    defaults = ToyConfig()
    p.add_argument("--shape", default=defaults.shape, help=f"{', '.join(SHAPES)} (default {defaults.shape}; "
                                                           f"disk is the counter-example without an effect)")
    p.add_argument("--linearized", type=float_arg(FRACTION), default=defaults.linearized,
                   help=f"share of hidden units made linear, in [0, 1] (default {defaults.linearized})")
    p.add_argument("--seeds", type=count_arg("seeds"), default=5,
                   help="number of seeds, each drawing data, initial weights and placement (default 5)")
    p.add_argument("--first-seed", type=seed_arg, default=0, help="seeds are FIRST..FIRST+SEEDS-1 (default 0)")
    p.add_argument("--which", default=defaults.which,
                   help=f"scratch mode: which units are linearized, {', '.join(WHICH)} (default {defaults.which})")
    p.add_argument("--mode", default=defaults.mode,
                   help=f"{' or '.join(MODES)}: train with fixed masks from scratch, or SNL on the trained "
                        f"ReLU model (default {defaults.mode})")
    p.add_argument("--depth", type=int_arg, default=defaults.depth, help=f"hidden layers (default {defaults.depth})")
    p.add_argument("--width", type=int_arg, default=defaults.width, help=f"units per layer (default {defaults.width})")
    p.add_argument("--steps", type=count_arg("steps"), default=defaults.steps,
                   help=f"full-batch Adam steps with cosine decay (default {defaults.steps})")
    p.add_argument("--lr", type=float_arg(POSITIVE),
                   default=defaults.lr, help=f"Adam learning rate (default {defaults.lr})")
    p.add_argument("--n", type=int_arg,
                   default=defaults.n, help=f"points before the 60/20/20 split (default {defaults.n})")
    p.add_argument("--noise", type=float_arg(NON_NEGATIVE),
                   help="label-flip share (paper, disk, xor) or coordinate noise sd (moons, circles, spiral); "
                        "default per shape")
    p.add_argument("--minority-ratio", type=float_arg(POSITIVE),
                   help="minority points per majority point (xor, moons, circles, spiral; default 0.1)")
    p.add_argument("--sweep", metavar="SHARES",
                   help="instead of one share: train at each of these linearized shares (e.g. 0.1,0.3,0.5,0.7,0.9; "
                        "0 = the ReLU model is added) and report per-group test accuracy per share")
    add_json_arg(p, "print per-seed and mean test accuracies as JSON")
    p.set_defaults(func=cmd_toy)
