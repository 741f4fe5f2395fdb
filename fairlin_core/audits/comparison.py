"""Mitigated vs unmitigated (and baseline) finetunes on the same masks, across budgets and seeds.

For every seed the linearizer places the masks once per budget (SNL: one trajectory); each variant
then finetunes the same students, so differences come from the finetune objective alone. Results are
tidy: ``runs`` has one row per seed x budget x variant x group; ``rows`` aggregates across seeds (mean
and Student-t 95% interval); ``summary`` gives overall and worst-group accuracy and the parity gap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import pandas as pd

from ..checkpoints import Checkpoint
from ..data import DatasetBundle
from ..errors import FairLinError, brief, check_seed
from ..finetune import BatchObjective, FinetuneConfig, MitigationConfig, mitigation_factory
from ..limits import check_many
from ..linearizers import LinearizeOptions, finish_selections, prepare_students, unique_budgets
from ..metrics.fairness import seed_summary
from ..models import relu_count
from ..runtime import CancelFlag, Progress, ProgressFn, json_ready, merge_duplicates

Variant = tuple[Callable[[], BatchObjective] | None, FinetuneConfig | None]


COMPARISON_TABLES = ("runs", "rows", "summary")  # the tables `compare --out` writes as NAME.csv


@dataclass
class Comparison:
    """runs, rows and summary (see the module docstring); notes: duplicate seeds or budgets that were merged."""

    runs: pd.DataFrame
    rows: pd.DataFrame
    summary: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def run_comparison(base, base_spec, bundle: DatasetBundle, method: str, budgets: list[Any], seeds: list[int],
                   variants: dict[str, Variant], *, options: LinearizeOptions | None = None,
                   splits: tuple[str, ...] = ("test",), selections: Sequence[str] | None = None, device=None,
                   progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> Comparison:
    """Run every (seed, budget, variant); variants map a name to (objective factory, finetune override).

    selections: validation selection rules to report from each variant's ONE finetune (column ``select``);
    None = the finetune config's own ``select``. Duplicate seeds, and budgets that resolve to the same ReLU
    count, are run once (``notes`` says so).
    """
    budgets, budget_notes = unique_budgets(check_many(budgets, "budgets", "budgets"), relu_count(base))
    seeds, seed_notes = merge_duplicates(check_many(seeds, "seeds", "seeds"), "seed")
    if not seeds:
        raise FairLinError("no seed given; expected at least one (e.g. --seeds 0,1,2)")
    seeds = [check_seed(seed) for seed in seeds]
    missing = [s for s in splits if s not in bundle.splits]
    if missing:
        raise FairLinError(f"dataset {bundle.name} has no split {brief(missing[0])}; expected one of {list(bundle.splits)}")
    records = []
    steps = len(seeds) * (1 + len(budgets) * len(variants))
    done = 0
    for seed in seeds:
        prepared = prepare_students(base, base_spec, bundle, method, budgets, options=options, seed=seed,
                                    device=device, cancel=cancel)
        done += 1
        for student in prepared.students:
            for name, (factory, config) in variants.items():
                _report(progress, done / steps, f"seed {seed}, budget {student.budget_requested}, {name}")
                tuning = config or prepared.options.finetune
                results = finish_selections(prepared, student, bundle, tuple(selections or (tuning.select,)),
                                            device=device, cancel=cancel, objective_factory=factory,
                                            finetune_config=tuning)
                done += 1
                for (select, result), split in product(results.items(), splits):
                    base_groups = {g["group"]: g for g in result.evaluations["base"][split]["groups"]}
                    for group in result.evaluations["finetuned"][split]["groups"]:
                        base_acc = base_groups[group["group"]]["accuracy"]
                        records.append({"seed": seed, "budget": student.budget_requested,
                                        "relu_count": result.relu_count, "variant": name, "select": select,
                                        "split": split, "group": group["group"], "n": group["n"],
                                        "accuracy": group["accuracy"], "base_accuracy": base_acc,
                                        "relative_drop": (base_acc - group["accuracy"]) / base_acc * 100
                                        if base_acc else float("nan"),
                                        "overall_accuracy": result.evaluations["finetuned"][split]["overall_accuracy"]})
    runs = pd.DataFrame(records)
    keys = ["split", "budget", "variant", "select", "group"]
    accuracy = seed_summary(runs, "accuracy", by=keys).rename(columns={
        "mean": "accuracy_mean", "std": "accuracy_std", "ci_low": "accuracy_ci_low", "ci_high": "accuracy_ci_high"})
    drop = runs.groupby(keys, sort=False)["relative_drop"].mean().rename("relative_drop_mean").reset_index()
    rows = accuracy.merge(drop, on=keys)
    present = runs[runs["n"] > 0]
    per_seed = present.groupby(["split", "budget", "variant", "select", "seed"], sort=False).agg(
        overall_accuracy=("overall_accuracy", "first"), worst_group_accuracy=("accuracy", "min"),
        best_group_accuracy=("accuracy", "max")).reset_index()
    per_seed["parity_gap"] = per_seed["best_group_accuracy"] - per_seed["worst_group_accuracy"]
    summary = per_seed.groupby(["split", "budget", "variant", "select"], sort=False)[
        ["overall_accuracy", "worst_group_accuracy", "parity_gap"]].mean().reset_index()
    return Comparison(runs=runs, rows=rows, summary=summary, notes=budget_notes + seed_notes)


def _report(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(Progress(fraction, "compare", message))


def comparison_json(comparison: Comparison, split: str = "test") -> dict[str, Any]:
    """The CLI's shape: rows (budget, group, mitigated, accuracy_mean/ci, relative_drop_mean) and summary."""
    rows = comparison.rows[comparison.rows["split"] == split]
    summary = comparison.summary[comparison.summary["split"] == split]
    return {
        "split": split,
        "rows": [{"budget": r.budget, "group": r.group, "mitigated": r.variant == "mitigated",
                  "accuracy_mean": json_ready(float(r.accuracy_mean)), "accuracy_ci_low": json_ready(float(r.accuracy_ci_low)),
                  "accuracy_ci_high": json_ready(float(r.accuracy_ci_high)), "n_seeds": int(r.n_seeds),
                  "relative_drop_mean": json_ready(float(r.relative_drop_mean))} for r in rows.itertuples()],
        "summary": [{"budget": r.budget, "mitigated": r.variant == "mitigated",
                     "overall_accuracy": float(r.overall_accuracy), "worst_group_accuracy": float(r.worst_group_accuracy),
                     "parity_gap": float(r.parity_gap)} for r in summary.itertuples()],
    }


def compare(base: Checkpoint, method: str, budgets: Sequence[Any], *, seeds: Sequence[int] = (0, 1, 2),
            data: DatasetBundle | None = None, mitigation: MitigationConfig | dict[str, Any] | str | None = None,
            finetune_epochs: int | None = None, snl_epochs: int | None = None,
            options: LinearizeOptions | None = None, splits: Sequence[str] = ("test",), device=None,
            progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> Comparison:
    """Mitigated vs unmitigated finetunes on the same masks for every budget and seed, in memory (``fl.compare``,
    the notebook's ``fairlin compare``); mitigation: the mitigated variant, a method name or its settings
    (default ``MitigationConfig()``, the lagrangian; see :meth:`MitigationConfig.coerce`).

    Returns a :class:`Comparison`: ``runs`` (one row per seed x budget x variant x group), ``rows`` (mean
    and 95% interval across seeds) and ``summary``.
    """
    bundle = base.resolve_data(data)
    config = MitigationConfig.coerce(mitigation) or MitigationConfig()
    variants = {"unmitigated": (None, None), "mitigated": (mitigation_factory(bundle, config), None)}
    return run_comparison(base.model, base.spec, bundle, method, check_many(budgets, "budgets", "budgets"),
                          check_many(seeds, "seeds", "seeds"), variants,
                          options=(options or LinearizeOptions()).with_epochs(snl_epochs, finetune_epochs),
                          splits=tuple(splits), device=device, progress=progress, cancel=cancel)
