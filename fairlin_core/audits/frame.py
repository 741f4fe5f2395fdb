"""The audit results as one tidy frame, and the few generic aggregators every view of
:class:`~fairlin_core.audits.results.AuditResults` is built from (after fairlearn's ``MetricFrame``).

:func:`tidy_frame` joins the runs to their groups: one row per run x split x group with the group's numbers
(n, base_accuracy, accuracy: fractions; relative_drop: percent), the run's recipe fields the views group by
(method, budget, budget_fraction, seed, mitigation: its name, protocol: the recipe in words, relu_count) and
the group's class (group_class: minority / majority, train_n). The aggregators take such a frame (or any
tidy table with those columns) and return one row per cell, cells in order of first appearance:

- :func:`across_seeds`: by recipe (any ``by`` columns): the mean across seeds, with a Student-t 95% interval
  (:func:`~fairlin_core.metrics.fairness.seed_summary`) for the values asked;
- :func:`pooled`: n-weighted over the groups of each cell (e.g. per run and group class): n, accuracy,
  base_accuracy and the relative drop of the pooled accuracies;
- :func:`per_run`: per run, over its groups: overall (n-weighted), worst-group, minority accuracy, parity gap;
- :func:`paired_difference`: one recipe minus a reference recipe (e.g. mitigation "lagrangian" vs "none"), with
  a paired interval: the Student-t interval of the per-seed differences over the seeds that ran both.

Budgets are labelled here too: :func:`budget_label` (a fraction as the pages' percent text) and
:func:`budget_fraction` (a requested budget as a fraction of the base ReLU count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

RUN_FIELDS = ["method", "budget", "budget_fraction", "mitigation", "seed", "relu_count"]  # + protocol
INTERVAL = ("mean", "std", "ci_low", "ci_high")


def tidy_frame(runs: pd.DataFrame, groups: pd.DataFrame, classes: pd.DataFrame,
               protocols: dict[str, str]) -> pd.DataFrame:
    """One row per ``groups`` row (run x split x group, in its order) with its run's :data:`RUN_FIELDS`, its
    protocol and its group's class. runs: the results' runs table; classes: group, train_n, group_class (one
    row per group); protocols: run_id -> the run's recipe in words."""
    fields = runs[["run_id", *RUN_FIELDS]].assign(protocol=runs["run_id"].map(protocols))
    frame = groups.merge(fields, on="run_id", validate="many_to_one")
    return frame.merge(classes[["group", "group_class", "train_n"]], on="group", how="left", validate="many_to_one")


def across_seeds(frame: pd.DataFrame, by: Sequence[str], *, intervals: Sequence[str] = (),
                 means: Sequence[str] = (), firsts: Sequence[str] = (), confidence: float = 0.95) -> pd.DataFrame:
    """Per ``by`` cell (e.g. a recipe's budget and group): the ``by`` columns, n_seeds, then for each value of
    ``intervals`` its ``{value}_mean``, ``_std`` (sample), ``_ci_low``, ``_ci_high`` (Student-t; NaN for one
    seed), then the mean of each of ``means`` and the first value of each of ``firsts``, under their names.
    n_seeds: the seeds with a value of the first of ``intervals`` (NaN values are left out), else the distinct
    seeds of the cell. frame: one row per seed and cell (a ``seed`` column)."""
    from ..metrics.fairness import seed_summary  # imports torch: only when a view needs it
    by = list(by)
    grouped = frame.groupby(by, sort=False, dropna=False)
    table = None if intervals else grouped.agg(n_seeds=("seed", "nunique")).reset_index()
    for value in intervals:
        summary = seed_summary(frame, value, by=by, confidence=confidence).rename(
            columns={k: f"{value}_{k}" for k in INTERVAL})
        table = summary if table is None else table.merge(summary.drop(columns="n_seeds"), on=by, how="left")
    if means or firsts:
        table = table.merge(grouped.agg(**{v: (v, "mean") for v in means}, **{v: (v, "first") for v in firsts})
                            .reset_index(), on=by, how="left")
    return table


def pooled(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per ``by`` cell (e.g. run_id and group_class), pooled over its rows (groups) weighted by n: the ``by``
    columns, n (sum), accuracy and base_accuracy (n-weighted means) and relative_drop of those two (percent).
    Rows with n = 0 weigh nothing; a cell with no examples is NaN."""
    weighted = frame.assign(_correct=frame["accuracy"] * frame["n"], _base=frame["base_accuracy"] * frame["n"])
    table = weighted.groupby(list(by), sort=False).agg(n=("n", "sum"), _correct=("_correct", "sum"),
                                                      _base=("_base", "sum")).reset_index()
    table["accuracy"] = table["_correct"] / table["n"]
    table["base_accuracy"] = table["_base"] / table["n"]
    return with_relative_drop(table.drop(columns=["_correct", "_base"]))


def per_run(frame: pd.DataFrame, by: Sequence[str] = ("run_id",)) -> pd.DataFrame:
    """Per run (the ``by`` columns, ``run_id`` among them), over its groups with examples (n > 0):
    overall_accuracy (n-weighted), worst_group_accuracy, parity_gap (best minus worst group) and
    minority_accuracy (n-weighted over the minority groups; NaN without any)."""
    rows = frame[frame["n"] > 0]
    by = list(by)
    table = rows.groupby(by, sort=False).agg(worst_group_accuracy=("accuracy", "min"),
                                             _best=("accuracy", "max")).reset_index()
    table["parity_gap"] = table.pop("_best") - table["worst_group_accuracy"]
    overall = pooled(rows, ["run_id"])[["run_id", "accuracy"]].rename(columns={"accuracy": "overall_accuracy"})
    minority = pooled(rows[rows["group_class"] == "minority"], ["run_id"])[["run_id", "accuracy"]]
    table = table.merge(overall, on="run_id").merge(minority.rename(columns={"accuracy": "minority_accuracy"}),
                                                    on="run_id", how="left")
    return table[[*by, "overall_accuracy", "worst_group_accuracy", "parity_gap", "minority_accuracy"]]


def paired_difference(frame: pd.DataFrame, value: str, by: Sequence[str], *, column: str, minuend: Any,
                      subtrahend: Any, pair_on: str = "seed", confidence: float = 0.95) -> pd.DataFrame:
    """``value`` of the rows whose ``column`` is ``minuend`` minus that of the rows whose ``column`` is
    ``subtrahend``, paired by ``pair_on`` within each ``by`` cell (e.g. mitigation "none" minus "lagrangian",
    per budget and group, seed by seed): the ``by`` columns, n_seeds (pairs), mean, std, ci_low, ci_high (the
    Student-t interval of the paired differences; NaN for one pair). Cells without a pair are absent."""
    from ..metrics.fairness import seed_summary
    keys = [*by, pair_on]
    paired = frame[frame[column] == minuend].merge(frame[frame[column] == subtrahend], on=keys,
                                                   suffixes=("_minuend", "_subtrahend"))
    paired["difference"] = paired[f"{value}_minuend"] - paired[f"{value}_subtrahend"]
    return seed_summary(paired, "difference", by=list(by), confidence=confidence)


def with_relative_drop(groups: pd.DataFrame) -> pd.DataFrame:
    """Add relative_drop = (base_accuracy - accuracy) / base_accuracy * 100 (NaN where the base is 0)."""
    base = groups["base_accuracy"].where(groups["base_accuracy"] > 0)
    return groups.assign(relative_drop=(base - groups["accuracy"]) / base * 100)


def budget_label(fraction: float) -> str:
    """A budget fraction as the percent label the pages use (0.1 -> "10%", 0.005 -> "0.5%")."""
    return f"{100 * fraction:.3g}%"


def budget_fraction(budget: Any, base_count: int) -> float:
    """A requested budget (count, fraction or "x%") as a fraction of the base ReLU count."""
    from ..linearizers import resolve_budget
    if isinstance(budget, str) and budget.strip().endswith("%"):
        return float(budget.strip()[:-1]) / 100.0
    if isinstance(budget, float) or (isinstance(budget, str) and "." in budget):
        return float(budget)
    return resolve_budget(budget, base_count) / base_count
