"""Evidence for issue 17: which mitigation raises the worst group most, and does any beat plain group
reweighting without costing more than 0.5 points of overall accuracy?

For each dataset/method/seed the masks are placed once for every budget (SNL: one shared trajectory);
every variant finetunes the same students for the same number of epochs: plain KD finetune
("unmitigated"), the Lagrangian (normalised violations, multipliers capped at lambda_max) at each mu,
the group-reweighted finetune and group DRO. Every finetune reports the model of each validation
selection rule (overall, worst-group, constrained) from the same run. Rows are written to
``runs_<checkpoint>_<method>.csv`` after every seed, so a partial run can be analysed.

    python benchmarks/bench_mitigation_evidence.py --out /tmp/evidence17 [--jobs digits-snl,digits-random,toy]
    python benchmarks/bench_mitigation_evidence.py --analyse /tmp/evidence17/runs_*.csv [--split balanced]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd
from scipy import stats

from fairlin_core.audits.comparison import run_comparison
from fairlin_core.checkpoints import load_checkpoint, load_dataset_for
from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.finetune import SELECTIONS, FinetuneConfig, MitigationConfig, mitigation_factory
from fairlin_core.linearizers import LinearizeOptions, SNLConfig

JOBS = {"digits-snl": ("digits_resnet18", "snl", "0.02,0.01,0.005"),
        "digits-random": ("digits_resnet18", "random", "0.02,0.01,0.005"),
        "toy": ("toy2d_mlp", "random", "0.5")}
BASELINES = ("unmitigated", "reweight")


def variants(bundle, mus: list[float], lambda_max: float, etas: list[float]) -> dict:
    table = {"unmitigated": (None, None)}
    table.update({f"lagrangian mu={mu:g}": (mitigation_factory(bundle, MitigationConfig(
        method="lagrangian", mu=mu, normalize=True, lambda_max=lambda_max)), None) for mu in mus})
    table["reweight"] = (mitigation_factory(bundle, MitigationConfig(method="reweight")), None)
    table.update({("groupdro" if len(etas) == 1 else f"groupdro eta={eta:g}"): (
        mitigation_factory(bundle, MitigationConfig(method="groupdro", eta=eta)), None) for eta in etas})
    return table


def per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per split x budget x variant x select x seed: overall, worst and parity gap, in points."""
    present = runs[runs["n"] > 0]
    table = present.groupby(["split", "budget", "variant", "select", "seed"], sort=False).agg(
        overall=("overall_accuracy", "first"), worst=("accuracy", "min"), best=("accuracy", "max")).reset_index()
    table["gap"] = table["best"] - table["worst"]
    table[["overall", "worst", "gap"]] *= 100
    return table.drop(columns="best")


def interval(values: pd.Series) -> tuple[float, float, float]:
    """(mean, low, high): Student-t 95% interval of the mean over seeds."""
    mean, n = values.mean(), len(values)
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
    return mean, mean - half, mean + half


def paired_gains(runs: pd.DataFrame, against: str) -> pd.DataFrame:
    """Per split, budget, variant and selection: change vs ``against`` (same seed, same masks; the baseline
    under the same selection rule) in worst-group, overall accuracy and parity gap, points, mean and
    Student-t 95% interval over seeds."""
    table = per_seed(runs)
    base = table[table["variant"] == against].drop(columns="variant")
    delta = table[table["variant"] != against].merge(base, on=["split", "budget", "select", "seed"],
                                                     suffixes=("", "_base"))
    rows = []
    for (split, budget, variant, select), cell in delta.groupby(["split", "budget", "variant", "select"], sort=False):
        row = {"split": split, "budget": budget, "variant": variant, "select": select, "seeds": len(cell)}
        for name in ("worst", "overall", "gap"):
            mean, low, high = interval(cell[name] - cell[f"{name}_base"])
            row[f"{name}_gain"] = f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"
            row[f"{name}_low"] = low
        rows.append(row)
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds: overall / worst / gap, points, per split x budget x variant x select."""
    return per_seed(runs).groupby(["split", "budget", "variant", "select"], sort=False)[
        ["overall", "worst", "gap"]].mean().reset_index()


def markdown(runs: pd.DataFrame, label: str) -> str:
    """README rows: per budget and variant, overall / worst / gap (means, %) under overall and worst-group
    selection, and the worst-group gain (95% interval; overall change) vs unmitigated (worst-group
    selection) and vs reweight (each selection), same selection on both sides."""
    means = summary(runs).set_index(["budget", "variant", "select"])
    gains = paired_gains(runs, "reweight").set_index(["budget", "variant", "select"])
    plain = paired_gains(runs, "unmitigated").set_index(["budget", "variant", "select"])
    lines = []
    for (budget, variant), _ in means.groupby(level=[0, 1], sort=False):
        cells = [label, budget, variant, str(runs.loc[runs["variant"] == variant, "seed"].nunique())]
        for select in ("overall", "worst-group"):
            m = means.loc[(budget, variant, select)]
            cells.append(f"{m['overall']:.1f} / {m['worst']:.1f} / {m['gap']:.1f}")
        for table, select in ((plain, "worst-group"), (gains, "overall"), (gains, "worst-group")):
            key = (budget, variant, select)
            cells.append(table.loc[key, "worst_gain"] + " (overall " + table.loc[key, "overall_gain"].split(" ")[0] + ")"
                         if key in table.index else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def analyse(paths: list[str], split: str, as_markdown: bool = False) -> None:
    if as_markdown:
        for path in paths:
            runs = pd.read_csv(path, dtype={"group": str, "budget": str})
            runs = runs[runs["split"] == (split if split in set(runs["split"]) else "test")]
            print(markdown(runs, f"{runs['checkpoint'].iloc[0]} {runs['method'].iloc[0]}"))
        return
    for path in paths:
        runs = pd.read_csv(path, dtype={"group": str, "budget": str})
        runs = runs[runs["split"] == split]
        print(f"\n== {path}: split {split}, seeds {sorted(runs['seed'].unique())}")
        print(summary(runs).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        for against in BASELINES:
            gains = paired_gains(runs, against)
            print(f"\n-- change vs {against}, points, mean [95% interval] over seeds")
            print(gains.drop(columns=[c for c in gains if c.endswith("_low")]).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--mus", default="0.01,0.05,0.2", help="Lagrangian mu values (normalised violations)")
    parser.add_argument("--lambda-max", type=float, default=0.5)
    parser.add_argument("--etas", default="0.1", help="group DRO step sizes")
    parser.add_argument("--jobs", default="digits-snl,digits-random,toy", help=f"any of {', '.join(JOBS)}")
    parser.add_argument("--snl-epochs", type=int, default=100)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--out", default="/tmp/evidence17")
    parser.add_argument("--analyse", nargs="+", metavar="RUNS_CSV", help="only analyse runs_*.csv of an earlier run")
    parser.add_argument("--split", default="balanced", help="split the analysis reports (balanced, test)")
    parser.add_argument("--markdown", action="store_true", help="with --analyse: the README table rows")
    args = parser.parse_args()
    if args.analyse:
        analyse(args.analyse, args.split, args.markdown)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    options = LinearizeOptions(snl=SNLConfig(epochs=args.snl_epochs), finetune=FinetuneConfig(epochs=args.finetune_epochs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for job in args.jobs.split(","):
        name, method, budgets = JOBS[job]
        checkpoint = load_checkpoint(SHIPPED_CHECKPOINTS / f"{name}.safetensors")
        bundle = load_dataset_for(checkpoint.sidecar)
        splits = tuple(s for s in ("test", "balanced") if s in bundle.splits)
        table = variants(bundle, [float(m) for m in args.mus.split(",")], args.lambda_max,
                         [float(e) for e in args.etas.split(",")])
        path = out / f"runs_{name}_{method}.csv"
        done = [pd.read_csv(path, dtype={"group": str, "budget": str})] if path.exists() else []
        finished = set(done[0]["seed"]) if done else set()
        for seed in (s for s in seeds if s not in finished):  # resumes: seeds already in the CSV are kept
            start = time.perf_counter()
            comparison = run_comparison(checkpoint.model, checkpoint.spec, bundle, method, budgets.split(","), [seed],
                                        table, options=options, splits=splits, selections=SELECTIONS)
            done.append(comparison.runs.assign(checkpoint=name, method=method))
            pd.concat(done).to_csv(path, index=False)
            print(f"{job} seed {seed}: {time.perf_counter() - start:.0f} s -> {path}", flush=True)
        analyse([str(path)], "balanced" if "balanced" in splits else "test")


if __name__ == "__main__":
    main()
