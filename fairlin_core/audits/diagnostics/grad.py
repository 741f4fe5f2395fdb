"""``grad``: group gradient norms and mean losses of both models, and every sample's own gradient norm."""

from __future__ import annotations

import pandas as pd

from ...metrics.gradients import group_gradient_norms, per_sample_gradient_norms
from ...runtime import ProgressFn, scaled_progress
from .base import AuditContext, Diagnostic, long_form, register_diagnostic, side_by_side


class Grad(Diagnostic):
    name = "grad"
    results = {"grad_norms": ("loss", "grad_norm")}
    cost = 6.0
    tables = ("grad_norms", "grad_samples")
    json_tables = by_group = ("grad_norms",)
    headline = ("grad_norm",)
    offered = preselected = drawn = True

    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """``grad_norms``: group, group_index, n, loss_{base,lin} (nats), grad_norm_{base,lin} (||g_a|| over the
        weights); ``grad_samples``: one row per model and sample (see :func:`per_sample_gradient_norms`)."""
        groups = audit.per_model(group_gradient_norms, scaled_progress(progress, 0, 1 / 3))
        samples = audit.per_model(per_sample_gradient_norms, scaled_progress(progress, 1 / 3, 1))
        return {"grad_norms": side_by_side(groups, ["loss", "grad_norm"]), "grad_samples": long_form(samples)}


register_diagnostic(Grad())
