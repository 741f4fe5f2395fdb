"""Readable versions of the audit views' tables for the pages and the HTML report: plain column names,
accuracies and drops in % with one decimal, intervals as ``"97.1 [95.3, 98.9]"``
(:func:`fairlin_core.runtime.format_interval`), and file names without ``%``."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from ..runtime import format_interval


def _interval(table: pd.DataFrame, mean: str, low: str | None, high: str | None, scale: float = 1.0) -> list[str]:
    lows = table[low] if low and low in table else pd.Series(float("nan"), index=table.index)
    highs = table[high] if high and high in table else pd.Series(float("nan"), index=table.index)
    return [format_interval(m * scale, lo * scale, hi * scale) for m, lo, hi in zip(table[mean], lows, highs)]


def _percent(values: pd.Series) -> list[str]:
    return [format_interval(100 * v, float("nan"), float("nan")) for v in values]


def group_table(rows: pd.DataFrame, minority: Sequence[str] = ()) -> pd.DataFrame:
    """:meth:`AuditResults.group_drop` rows (one budget) as a readable table; ``minority``: the minority groups
    (:meth:`AuditResults.minority_groups`), the others are majority."""
    minority = set(minority)
    return pd.DataFrame({
        "Group": rows["group"].tolist(),
        "Class": ["minority" if g in minority else "majority" for g in rows["group"]],
        "Train n": rows["train_n"].astype("Int64").tolist(), "Test n": rows["n"].astype("Int64").tolist(),
        "Base accuracy (%)": _percent(rows["base_accuracy"]),
        "Accuracy (%) [95% CI]": _interval(rows, "accuracy_mean", "accuracy_ci_low", "accuracy_ci_high", 100),
        "Relative drop (%) [95% CI]": _interval(rows, "drop_mean", "drop_ci_low", "drop_ci_high"),
        "Seeds": rows["n_seeds"].astype("Int64").tolist()})


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:meth:`AuditResults.fairness_summary` as a readable table."""
    return pd.DataFrame({
        "Method": summary["method"].tolist(), "ReLUs kept": summary["budget"].tolist(),
        "Mitigation": summary["mitigation"].tolist(), "ReLUs": summary["relu_count"].round().astype("Int64").tolist(),
        "Seeds": summary["n_seeds"].astype("Int64").tolist(),
        "Overall accuracy (%)": _percent(summary["overall_accuracy"]),
        "Worst-group accuracy (%)": _percent(summary["worst_group_accuracy"]),
        "Parity gap (points)": _percent(summary["parity_gap"])})


def front_table(front: pd.DataFrame) -> pd.DataFrame:
    """The Pareto rows of :meth:`AuditResults.cost_front` as a readable table."""
    rows = front[front["front_worst"] | front["front_minority"]]
    return pd.DataFrame({
        "Method": rows["method"].tolist(), "ReLUs kept": rows["budget"].tolist(),
        "Mitigation": rows["mitigation"].tolist(), "ReLUs": rows["relu_count"].round().astype("Int64").tolist(),
        "Online latency (s)": [f"{v:.3g}" for v in rows["online_latency_s"]],
        "Online traffic (MB)": [f"{v:.3g}" for v in rows["online_mb"]],
        "Worst-group accuracy (%)": _percent(rows["worst_group_accuracy"]),
        "Minority accuracy (%)": _percent(rows["minority_accuracy"]),
        "On the worst-group front": rows["front_worst"].tolist(),
        "On the minority front": rows["front_minority"].tolist()})


def mitigation_table(effect: pd.DataFrame) -> pd.DataFrame:
    """:meth:`AuditResults.mitigation_effect` as a readable table."""
    return pd.DataFrame({
        "ReLUs kept": effect["budget"].tolist(), "Group": effect["group"].tolist(),
        "Drop, plain finetune (%)": [f"{v:.1f}" for v in effect["drop_mean_off"]],
        "Drop, mitigated (%)": [f"{v:.1f}" for v in effect["drop_mean_on"]],
        "Drop difference (points) [95% CI]": _interval(effect, "drop_difference", "drop_difference_ci_low",
                                                       "drop_difference_ci_high"),
        "Seeds": effect["n_seeds"].astype("Int64").tolist()})


def diagnostics_table(rows: pd.DataFrame) -> pd.DataFrame:
    """:meth:`AuditResults.diagnostics_by_budget` rows (one budget) as a readable table."""
    return pd.DataFrame({
        "Group": rows["group"].tolist(), "Gradient norm": [f"{v:.4g}" for v in rows["grad_norm"]],
        "Top Hessian eigenvalue": [f"{v:.4g}" for v in rows["top_eigenvalue"]],
        "Boundary distance (input)": [f"{v:.4g}" for v in rows["input_margin_mean"]],
        "Bound (nats)": [f"{v:.4g}" for v in rows["bound"]],
        "Measured excess loss (nats)": [f"{v:.4g}" for v in rows["excess_loss"]],
        "Accuracy (%)": _percent(rows["accuracy"]), "Seeds": rows["n_seeds"].astype("Int64").tolist()})


def file_name(*parts: object, suffix: str = "csv") -> str:
    """A download name from ``parts``: "0.5%" becomes "0.5pct", anything but letters, digits, ``.`` and
    ``-`` becomes ``_`` (no ``%`` or spaces in a file name)."""
    text = "_".join(str(p).replace("%", "pct") for p in parts if str(p))
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", text).strip("_") + f".{suffix}"
