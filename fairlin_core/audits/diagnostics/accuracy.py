"""``accuracy``: per-group accuracy of both models and the relative drop, with paired bootstrap intervals."""

from __future__ import annotations

import pandas as pd

from ...metrics.fairness import bootstrap_accuracy_drop
from ...runtime import ProgressFn
from .base import AuditContext, Diagnostic, register_diagnostic


class Accuracy(Diagnostic):
    name = "accuracy"
    tables = json_tables = by_group = ("accuracy",)
    headline = ("accuracy", "relative_drop")
    offered = True

    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """``accuracy``: group, group_index, n, accuracy_base, accuracy_lin (fractions), relative_drop (percent of
        the base) with its paired bootstrap interval (seeded by ``audit.seed``)."""
        predictions = audit.predictions
        return {"accuracy": bootstrap_accuracy_drop(audit.data.y.numpy(), predictions["base"], predictions["lin"],
                                                    audit.data.group.numpy(), audit.group_names, seed=audit.seed)}


register_diagnostic(Accuracy())
