"""``bound``: Theorem 4.4, ``||g_a|| d + 1/2 lambda_max(H_a) d^2`` at the base model vs the measured excess loss."""

from __future__ import annotations

import pandas as pd

from ...metrics.bound import theorem_bound
from ...metrics.gradients import group_gradient_norms
from ...metrics.hessian import group_hessian_eigenvalues
from ...runtime import ProgressFn, scaled_progress
from .base import AuditContext, Diagnostic, register_diagnostic


class Bound(Diagnostic):
    name = "bound"
    results = {"bound": ("bound", "excess_loss")}
    needs = ("grad", "hessian")
    tables = json_tables = by_group = ("bound",)
    headline = ("bound", "excess_loss", "holds")
    offered = preselected = drawn = True

    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """``bound``: one row per group (see :func:`theorem_bound`), from the base model's group gradient norms
        and top eigenvalues (grad's and hessian's when they ran, measured here otherwise)."""
        grads = audit.per_model(group_gradient_norms, scaled_progress(progress, 0, 1 / 6), ("base",))
        eigenvalues = audit.per_model(group_hessian_eigenvalues, scaled_progress(progress, 1 / 6, 5 / 6), ("base",),
                                      seed=audit.seed)
        return {"bound": theorem_bound(audit.base.model, audit.lin.model, audit.data, audit.group_names,
                                       grad_norms=grads["base"], eigenvalues=eigenvalues["base"], seed=audit.seed,
                                       device=audit.device, cancel=audit.cancel,
                                       progress=scaled_progress(progress, 5 / 6, 1, "{stage} (base): "))}


register_diagnostic(Bound())
