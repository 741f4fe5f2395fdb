"""What the audit and diagnostics pages show, computed from :class:`~fairlin_core.results.AuditResults`.

Every function takes the results plus the current choices (split, methods, mitigation, budget) and
returns one tidy DataFrame, aggregated across seeds with a Student-t 95% interval where it says so.
Budgets are ordered from the largest to the smallest; group order is the dataset's.
"""

from __future__ import annotations

import itertools
import pandas as pd

from ..linearize.api import METHODS
from ..metrics.fairness import seed_summary
from .results import AuditResults

RUN_KEYS = ["method", "budget", "budget_fraction", "mitigation"]


def methods(results: AuditResults) -> list[str]:
    """The methods present, in the engine's order (snl, deepreduce, random)."""
    present = set(results.runs["method"])
    return [m for m in METHODS if m in present] + sorted(present - set(METHODS))


def budgets(results: AuditResults, method: str | None = None) -> list[str]:
    """The completed budgets (of one method, or of any), largest first."""
    runs = results.runs if method is None else results.runs[results.runs["method"] == method]
    order = runs.drop_duplicates("budget").sort_values("budget_fraction", ascending=False)
    return order["budget"].tolist()


def splits(results: AuditResults) -> list[str]:
    return list(dict.fromkeys(results.groups["split"]))


def group_runs(results: AuditResults, split: str) -> pd.DataFrame:
    """``groups`` rows of one split joined with their run's method, budget, seed, mitigation, relu_count."""
    groups = results.groups[results.groups["split"] == split]
    runs = results.runs[["run_id", *RUN_KEYS, "seed", "relu_count"]]
    return groups.merge(runs, on="run_id", validate="many_to_one")


def _ordered(table: pd.DataFrame, results: AuditResults) -> pd.DataFrame:
    order = {g: i for i, g in enumerate(results.group_names)}
    return table.assign(_g=table["group"].map(order)).sort_values(["_g", "budget_fraction"],
                                                                  ascending=[True, False]).drop(columns="_g")


def group_drop(results: AuditResults, split: str, method: str, mitigation: str) -> pd.DataFrame:
    """Per group and budget: relative accuracy drop (%) and accuracy, means across seeds with 95% intervals.

    Columns: budget, budget_fraction, group, n (test examples), train_n, relu_count (mean), n_seeds,
    drop_mean, drop_ci_low, drop_ci_high, accuracy_mean, accuracy_ci_low, accuracy_ci_high, base_accuracy.
    """
    rows = group_runs(results, split)
    rows = rows[(rows["method"] == method) & (rows["mitigation"] == mitigation)]
    keys = ["budget", "budget_fraction", "group"]
    drop = seed_summary(rows, "relative_drop", by=keys).rename(columns={
        "mean": "drop_mean", "ci_low": "drop_ci_low", "ci_high": "drop_ci_high", "std": "drop_std"})
    accuracy = seed_summary(rows, "accuracy", by=keys).rename(columns={
        "mean": "accuracy_mean", "ci_low": "accuracy_ci_low", "ci_high": "accuracy_ci_high"})
    extra = rows.groupby(keys, sort=False).agg(n=("n", "first"), relu_count=("relu_count", "mean"),
                                               base_accuracy=("base_accuracy", "first")).reset_index()
    accuracy["accuracy_ci_low"] = accuracy["accuracy_ci_low"].clip(lower=0.0)
    accuracy["accuracy_ci_high"] = accuracy["accuracy_ci_high"].clip(upper=1.0)
    drop["drop_ci_high"] = drop["drop_ci_high"].clip(upper=100.0)
    table = drop.merge(accuracy[[*keys, "accuracy_mean", "accuracy_ci_low", "accuracy_ci_high"]], on=keys)
    table = table.merge(extra, on=keys).merge(train_sizes(results), on="group", how="left")
    return _ordered(table, results).reset_index(drop=True)


def train_sizes(results: AuditResults) -> pd.DataFrame:
    """group, train_n: the training-set size of every group (what makes a group a minority)."""
    sizes = results.group_sizes
    return sizes[sizes["split"] == "train"][["group", "n"]].rename(columns={"n": "train_n"})


def fairness_summary(results: AuditResults, split: str) -> pd.DataFrame:
    """Per method, budget and mitigation: overall accuracy (n-weighted over groups), worst-group accuracy,
    parity gap (best minus worst group), means across seeds, plus relu_count and n_seeds."""
    rows = group_runs(results, split)
    rows = rows[rows["n"] > 0]
    per_run = rows.groupby(["run_id", *RUN_KEYS, "seed", "relu_count"], sort=False).apply(
        lambda r: pd.Series({"overall_accuracy": (r["accuracy"] * r["n"]).sum() / r["n"].sum(),
                             "worst_group_accuracy": r["accuracy"].min(),
                             "parity_gap": r["accuracy"].max() - r["accuracy"].min()}),
        include_groups=False).reset_index()
    table = per_run.groupby(RUN_KEYS, sort=False).agg(
        relu_count=("relu_count", "mean"), n_seeds=("seed", "nunique"), overall_accuracy=("overall_accuracy", "mean"),
        worst_group_accuracy=("worst_group_accuracy", "mean"), parity_gap=("parity_gap", "mean")).reset_index()
    return table.sort_values(["method", "budget_fraction", "mitigation"], ascending=[True, False, True]) \
                .reset_index(drop=True)


def method_comparison(results: AuditResults, split: str, mitigation: str) -> pd.DataFrame:
    """:func:`group_drop` of every method stacked with a ``method`` column (filter one budget to compare)."""
    tables = [group_drop(results, split, method, mitigation).assign(method=method) for method in methods(results)]
    return pd.concat(tables, ignore_index=True)


def mitigation_effect(results: AuditResults, split: str, method: str) -> pd.DataFrame:
    """The paper's Figure 9: per budget and group, relative drop without minus with mitigation (points;
    positive = mitigation helped), with both drops and the accuracy difference (means across seeds)."""
    off = group_drop(results, split, method, "off")
    on = group_drop(results, split, method, "on")
    keys = ["budget", "budget_fraction", "group"]
    table = off[[*keys, "n", "train_n", "drop_mean", "accuracy_mean"]].merge(
        on[[*keys, "drop_mean", "accuracy_mean"]], on=keys, suffixes=("_off", "_on"))
    table["drop_difference"] = table["drop_mean_off"] - table["drop_mean_on"]
    table["accuracy_gain"] = table["accuracy_mean_on"] - table["accuracy_mean_off"]
    return _ordered(table, results).reset_index(drop=True)


def missing_runs(results: AuditResults) -> pd.DataFrame:
    """Cells of the grid spanned by the methods, budgets, seeds and mitigations present that have no run
    (method, budget, seed, mitigation), minus the combinations the results' metadata says were skipped."""
    runs = results.runs
    if runs.empty:
        return pd.DataFrame(columns=["method", "budget", "seed", "mitigation"])
    skipped = {(s["method"], s["budget"]) for s in results.meta.get("skipped", [])}
    have = set(zip(runs["method"], runs["budget"], runs["seed"], runs["mitigation"]))
    grid = itertools.product(runs["method"].drop_duplicates(), budgets(results), sorted(runs["seed"].unique()),
                             runs["mitigation"].drop_duplicates())
    rows = [{"method": m, "budget": b, "seed": int(s), "mitigation": x} for m, b, s, x in grid
            if (m, b, s, x) not in have and (m, b) not in skipped]
    return pd.DataFrame(rows, columns=["method", "budget", "seed", "mitigation"])


# -- diagnostics ---------------------------------------------------------------------------------

def diagnostics_by_budget(results: AuditResults, method: str, mitigation: str) -> pd.DataFrame:
    """Per budget and group, the linearized model's diagnostics (means over the seeds that have them), plus
    one row per group at budget "base" (budget_fraction 1) with the base model's values.

    Columns: budget, budget_fraction, group, loss, grad_norm, top_eigenvalue, softmax_margin_mean,
    input_margin_mean, bound, excess_loss, accuracy (test, same seeds), n_seeds.
    """
    diag = results.diagnostics.merge(results.runs[["run_id", *RUN_KEYS, "seed"]], on="run_id")
    diag = diag[(diag["method"] == method) & (diag["mitigation"] == mitigation)]
    values = ["loss", "grad_norm", "top_eigenvalue", "softmax_margin_mean", "input_margin_mean", "bound",
              "excess_loss"]
    if diag.empty:
        return pd.DataFrame(columns=["budget", "budget_fraction", "group", *values, "accuracy", "n_seeds"])
    accuracy = results.groups[results.groups["split"] == "test"][["run_id", "group", "accuracy", "base_accuracy"]]
    diag = diag.merge(accuracy, on=["run_id", "group"], how="left")
    lin = diag[diag["model"] == "lin"].groupby(["budget", "budget_fraction", "group"], sort=False).agg(
        **{v: (v, "mean") for v in values}, accuracy=("accuracy", "mean"), n_seeds=("seed", "nunique")).reset_index()
    base = diag[diag["model"] == "base"].groupby("group", sort=False).agg(
        **{v: (v, "mean") for v in values}, accuracy=("base_accuracy", "mean"),
        n_seeds=("seed", "nunique")).reset_index().assign(budget="base", budget_fraction=1.0)
    table = pd.concat([base, lin], ignore_index=True)
    return _ordered(table, results).reset_index(drop=True)


def parameter_distances(results: AuditResults) -> pd.DataFrame:
    """method, mitigation, budget, budget_fraction, relu_count, param_distance (mean over the seeds that
    measured it)."""
    runs = results.runs.dropna(subset=["param_distance"])
    return runs.groupby(["method", "mitigation", "budget", "budget_fraction"], sort=False).agg(
        relu_count=("relu_count", "mean"), param_distance=("param_distance", "mean")).reset_index() \
        .sort_values(["method", "mitigation", "budget_fraction"], ascending=[True, True, False]).reset_index(drop=True)


def diagnostic_run(results: AuditResults, method: str, budget: str, mitigation: str = "off",
                   table: str = "density") -> str | None:
    """The id of the first run (lowest seed) of that cell that has rows in ``table`` (density or
    attributions), or None."""
    have = set(getattr(results, table)["run_id"])
    runs = results.runs[(results.runs["method"] == method) & (results.runs["budget"] == budget)
                        & (results.runs["mitigation"] == mitigation) & results.runs["run_id"].isin(have)]
    return runs.sort_values("seed")["run_id"].iloc[0] if len(runs) else None


def run_rows(results: AuditResults, table: str, run_id: str) -> pd.DataFrame:
    """The rows of one run in ``table`` (e.g. density or attributions)."""
    rows = getattr(results, table)
    return rows[rows["run_id"] == run_id]

