"""Accuracy disparity between groups: relative drop, worst group, parity gap, and their uncertainty.

- Relative accuracy drop of group a (the paper's measure, in percent):
  ``(acc_base(a) - acc_lin(a)) / acc_base(a) * 100`` (NaN where acc_base(a) = 0).
- Worst-group accuracy: min over groups with samples; accuracy-parity gap: max - min.
- Within a run: percentile bootstrap intervals, resampling samples with replacement *within each group*
  (group sizes fixed, as in stratified resampling), seeded. For the drop the base and linearized
  predictions of the same resampled samples are paired.
- Across seeds: mean with a Student-t 95% interval (``mean +- t_{n-1} * sd / sqrt(n)``).

Point estimates come from :func:`~fairlin_core.metrics.accuracy.group_accuracy` (fairlearn's
MetricFrame), so they equal fairlearn's numbers exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..limits import check_count
from .accuracy import group_accuracy


def relative_accuracy_drop(base: pd.DataFrame, linearized: pd.DataFrame) -> pd.DataFrame:
    """Join two :func:`group_accuracy` tables of the same groups into group, group_index, n,
    accuracy_base, accuracy_lin (fractions), relative_drop (percent of the base accuracy)."""
    table = base[["group", "group_index", "n", "accuracy"]].rename(columns={"accuracy": "accuracy_base"})
    table = table.merge(linearized[["group_index", "accuracy"]].rename(columns={"accuracy": "accuracy_lin"}),
                        on="group_index", how="left", validate="one_to_one")
    table["relative_drop"] = _relative_drop(table["accuracy_base"].to_numpy(), table["accuracy_lin"].to_numpy())
    return table


def _relative_drop(base: np.ndarray, linearized: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(base > 0, (base - linearized) / base * 100.0, np.nan)


def worst_group_accuracy(table: pd.DataFrame) -> float:
    """Lowest accuracy over the groups of a :func:`group_accuracy` table that have samples."""
    present = table.loc[table["n"] > 0, "accuracy"]
    return float(present.min()) if len(present) else float("nan")


def parity_gap(table: pd.DataFrame) -> float:
    """Accuracy-parity gap: highest minus lowest accuracy over the groups that have samples."""
    present = table.loc[table["n"] > 0, "accuracy"]
    return float(present.max() - present.min()) if len(present) else float("nan")


def _within_group_resamples(groups: np.ndarray, n_groups: int, n_boot: int,
                            rng: np.random.Generator) -> list[np.ndarray | None]:
    """Per group: (n_boot, n_a) indices into the samples, drawn with replacement among the group's own."""
    check_count(n_boot, "bootstrap n_boot", "bootstrap_draws")
    draws: list[np.ndarray | None] = []
    for index in range(n_groups):
        members = np.flatnonzero(groups == index)
        draws.append(members[rng.integers(0, len(members), (n_boot, len(members)))] if len(members) else None)
    return draws


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, group_names: list[str],
                             *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per-group accuracy with a percentile bootstrap interval, resampling within each group.

    Columns: group, group_index, n, accuracy (fairlearn's), ci_low, ci_high (fractions).
    """
    table = group_accuracy(y_true, y_pred, groups, group_names)
    correct = np.asarray(y_true) == np.asarray(y_pred)
    draws = _within_group_resamples(np.asarray(groups), len(group_names), n_boot, np.random.default_rng(seed))
    bounds = [_interval(correct[d].mean(1), confidence) if d is not None else (np.nan, np.nan) for d in draws]
    table["ci_low"], table["ci_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return table


def bootstrap_accuracy_drop(y_true: np.ndarray, pred_base: np.ndarray, pred_lin: np.ndarray, groups: np.ndarray,
                            group_names: list[str], *, n_boot: int = 1000, confidence: float = 0.95,
                            seed: int = 0) -> pd.DataFrame:
    """Per-group base and linearized accuracy and relative drop, each with a paired bootstrap interval.

    Columns: group, group_index, n, accuracy_base, accuracy_base_low, accuracy_base_high, accuracy_lin,
    accuracy_lin_low, accuracy_lin_high (fractions), relative_drop, relative_drop_low,
    relative_drop_high (percent). Each bootstrap replicate resamples a group's samples once and scores
    both models on the same resample.
    """
    y_true, groups = np.asarray(y_true), np.asarray(groups)
    table = relative_accuracy_drop(group_accuracy(y_true, pred_base, groups, group_names),
                                   group_accuracy(y_true, pred_lin, groups, group_names))
    correct_base, correct_lin = y_true == np.asarray(pred_base), y_true == np.asarray(pred_lin)
    draws = _within_group_resamples(groups, len(group_names), n_boot, np.random.default_rng(seed))
    intervals: dict[str, list[tuple[float, float]]] = {"accuracy_base": [], "accuracy_lin": [], "relative_drop": []}
    for d in draws:
        if d is None:
            for bounds in intervals.values():
                bounds.append((np.nan, np.nan))
            continue
        base, lin = correct_base[d].mean(1), correct_lin[d].mean(1)
        intervals["accuracy_base"].append(_interval(base, confidence))
        intervals["accuracy_lin"].append(_interval(lin, confidence))
        intervals["relative_drop"].append(_interval(_relative_drop(base, lin), confidence))
    columns = ["group", "group_index", "n"]
    for name, bounds in intervals.items():
        table[f"{name}_low"], table[f"{name}_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
        columns += [name, f"{name}_low", f"{name}_high"]
    return table[columns]


def seed_summary(frame: pd.DataFrame, value: str, by: Sequence[str] = ("group",),
                 confidence: float = 0.95) -> pd.DataFrame:
    """Mean of ``value`` across the rows (seeds) of each ``by`` cell with a Student-t interval.

    frame: tidy, one row per seed and cell (e.g. group x budget x method). Returns the ``by`` columns
    plus n_seeds, mean, std (sample, ddof=1), ci_low, ci_high; NaN interval for a single seed.
    NaN values are ignored.
    """
    grouped = frame.groupby(list(by), sort=False, dropna=False)[value]
    table = grouped.agg(n_seeds="count", mean="mean", std="std").reset_index()
    n = table["n_seeds"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.ppf((1 + confidence) / 2, n - 1) * table["std"].to_numpy() / np.sqrt(n)
    half = np.where(n > 1, half, np.nan)
    table["ci_low"], table["ci_high"] = table["mean"] - half, table["mean"] + half
    return table


def bootstrap_accuracy(accuracy: Sequence[float], n: Sequence[int], confidence: float = 0.95, draws: int = 2000,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of each group's accuracy (fractions) from its accuracy and size n.

    Resampling a group's n examples with replacement draws its number of correct predictions from
    Binomial(n, accuracy), so the bootstrap needs only the two numbers. Returns (low, high) arrays of
    fractions; NaN where n is 0.
    """
    check_count(draws, "bootstrap draws", "bootstrap_draws")
    accuracy = np.asarray(accuracy, dtype=float)
    n = np.asarray(n, dtype=int)
    rng = np.random.default_rng(seed)
    safe = np.clip(np.nan_to_num(accuracy), 0.0, 1.0)
    correct = rng.binomial(np.maximum(n, 0)[:, None], safe[:, None], size=(len(n), draws))
    with np.errstate(divide="ignore", invalid="ignore"):
        resampled = correct / n[:, None]
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, tail, axis=1), np.quantile(resampled, 1 - tail, axis=1)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)
