"""Evidence for issue 5: does the Lagrangian mitigation raise worst-group accuracy at aggressive budgets
without costing more than 1 point of overall accuracy, and does it do more than the obvious baselines?

For each dataset/method/budget/seed the masks are placed once; every variant finetunes the same
students: plain KD finetune, the Lagrangian at each mu, a group-reweighted finetune (same epochs), and a
plain finetune with twice the epochs. Reports overall accuracy, worst-group accuracy and parity gap
(means over seeds) on the imbalanced test split and, where the dataset has it, the balanced split.

    python benchmarks/bench_mitigation_evidence.py --out results/mitigation [--seeds 0,1,2,3,4]
    python benchmarks/bench_mitigation_evidence.py --analyse results/mitigation/runs_*.csv
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
from scipy import stats

from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.audit.compare import run_comparison
from fairlin_core.checkpoints import load_dataset_for
from fairlin_core.finetune import FinetuneConfig, MitigationConfig, mitigation_factory
from fairlin_core.finetune.reweight import reweighting_factory
from fairlin_core.linearize import LinearizeOptions, SNLConfig


def variants(bundle, finetune: FinetuneConfig, mus: list[float]) -> dict:
    train = bundle.splits["train"]
    table = {"unmitigated": (None, None)}
    table.update({f"lagrangian mu={mu:g}": (mitigation_factory(bundle.group_names, MitigationConfig(mu=mu)), None)
                  for mu in mus})
    table["reweighted"] = (reweighting_factory(train.group, len(bundle.group_names)), None)
    table["plain, 2x epochs"] = (None, replace(finetune, epochs=2 * finetune.epochs))
    return table


def paired_gains(runs: pd.DataFrame) -> pd.DataFrame:
    """Per split, budget and variant: the change vs the unmitigated finetune of the same seed (same masks) in
    worst-group and overall accuracy, in points, mean and Student-t 95% interval over seeds, and how many
    seeds saw the worst group improve."""
    present = runs[runs["n"] > 0]
    per_seed = present.groupby(["split", "budget", "variant", "seed"]).agg(
        overall=("overall_accuracy", "first"), worst=("accuracy", "min")).reset_index()
    plain = per_seed[per_seed["variant"] == "unmitigated"].drop(columns="variant")
    delta = per_seed[per_seed["variant"] != "unmitigated"].merge(plain, on=["split", "budget", "seed"],
                                                                 suffixes=("", "_plain"))
    delta["worst_gain"] = 100 * (delta["worst"] - delta["worst_plain"])
    delta["overall_gain"] = 100 * (delta["overall"] - delta["overall_plain"])
    rows = []
    for (split, budget, variant), cell in delta.groupby(["split", "budget", "variant"], sort=False):
        row = {"split": split, "budget": budget, "variant": variant, "seeds": len(cell),
               "worst_up": int((cell["worst_gain"] > 0).sum())}
        for name in ("worst_gain", "overall_gain"):
            mean, sd, n = cell[name].mean(), cell[name].std(ddof=1), len(cell)
            half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
            row[name] = f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--mus", default="0.005,0.05,0.5")
    parser.add_argument("--digits-budgets", default="0.05,0.02,0.01,0.005")
    parser.add_argument("--methods", default="snl,random")
    parser.add_argument("--snl-epochs", type=int, default=100)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--skip-toy", action="store_true")
    parser.add_argument("--out", default="results/mitigation")
    parser.add_argument("--analyse", nargs="+", metavar="RUNS_CSV",
                        help="only print the paired gains of runs_*.csv files written by an earlier run")
    args = parser.parse_args()
    if args.analyse:
        for path in args.analyse:
            print(f"\n== {path}: change vs unmitigated, points, mean [95% interval] over seeds")
            print(paired_gains(pd.read_csv(path, dtype={"group": str})).to_string(index=False))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    mus = [float(m) for m in args.mus.split(",")]
    finetune = FinetuneConfig(epochs=args.finetune_epochs)
    options = LinearizeOptions(snl=SNLConfig(epochs=args.snl_epochs), finetune=finetune)
    jobs = [("digits_resnet18", method, args.digits_budgets.split(",")) for method in args.methods.split(",")]
    if not args.skip_toy:
        jobs.append(("toy2d_mlp", "random", ["0.5"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for name, method, budgets in jobs:
        checkpoint = load_checkpoint(SHIPPED_CHECKPOINTS / f"{name}.safetensors")
        bundle = load_dataset_for(checkpoint.sidecar)
        splits = tuple(s for s in ("test", "balanced") if s in bundle.splits)
        start = time.perf_counter()
        comparison = run_comparison(checkpoint.model, checkpoint.spec, bundle, method, budgets, seeds,
                                    variants(bundle, finetune, mus), options=options, splits=splits)
        comparison.runs.assign(checkpoint=name, method=method).to_csv(out / f"runs_{name}_{method}.csv", index=False)
        summary = comparison.summary.assign(checkpoint=name, method=method)
        summaries.append(summary)
        print(f"\n== {name} / {method}: {time.perf_counter() - start:.0f} s, seeds {seeds}")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("change vs unmitigated, points, mean [95% interval] over seeds:")
        print(paired_gains(comparison.runs).to_string(index=False))
    pd.concat(summaries).to_csv(out / "summary.csv", index=False)


if __name__ == "__main__":
    main()
