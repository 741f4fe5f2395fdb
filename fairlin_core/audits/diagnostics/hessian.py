"""``hessian``: the top Hessian eigenvalue of every group's loss for both models (Lanczos)."""

from __future__ import annotations

import pandas as pd

from ...metrics.hessian import group_hessian_eigenvalues
from ...runtime import ProgressFn
from .base import AuditContext, Diagnostic, register_diagnostic, side_by_side


class Hessian(Diagnostic):
    name = "hessian"
    results = {"hessian": ("top_eigenvalue",)}
    cost = 8.0
    tables = json_tables = by_group = ("hessian",)
    headline = ("top_eigenvalue",)
    offered = preselected = drawn = True

    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """``hessian``: group, group_index, n, top_eigenvalue_{base,lin} and error_bound_{base,lin} (the Ritz
        residual), from Lanczos starts seeded by ``audit.seed``."""
        tables = audit.per_model(group_hessian_eigenvalues, progress, seed=audit.seed)
        tops = {m: t[t["rank"] == 1].rename(columns={"eigenvalue": "top_eigenvalue"}) for m, t in tables.items()}
        return {"hessian": side_by_side(tops, ["top_eigenvalue", "error_bound"])}


register_diagnostic(Hessian())
