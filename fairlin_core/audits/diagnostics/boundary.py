"""``boundary``: mean and median distance of every group's samples to the decision boundary, both models."""

from __future__ import annotations

import pandas as pd

from ...metrics.boundary import boundary_distances, boundary_summary
from ...runtime import ProgressFn
from .base import AuditContext, Diagnostic, long_form, register_diagnostic, side_by_side


class Boundary(Diagnostic):
    name = "boundary"
    results = {"boundary": ("softmax_margin_mean", "input_margin_mean")}
    tables = ("boundary", "boundary_samples")
    json_tables = by_group = ("boundary",)
    headline = ("softmax_margin_mean", "input_margin_mean")
    offered = preselected = drawn = True

    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """``boundary``: group, group_index, n, softmax_margin_{mean,median}_{base,lin} and
        input_margin_{mean,median}_{base,lin}; ``boundary_samples``: one row per model and sample (see
        :func:`boundary_distances`)."""
        samples = audit.per_model(boundary_distances, progress)
        summaries = {m: boundary_summary(t, audit.group_names) for m, t in samples.items()}
        columns = ["softmax_margin_mean", "softmax_margin_median", "input_margin_mean", "input_margin_median"]
        return {"boundary": side_by_side(summaries, columns), "boundary_samples": long_form(samples)}


register_diagnostic(Boundary())
