"""``density``: the Hessian eigenvalue density of every group by stochastic Lanczos quadrature, both models."""

from __future__ import annotations

import pandas as pd

from ...metrics.hessian import group_hessian_density
from ...runtime import ProgressFn
from .base import AuditContext, Diagnostic, long_form, register_diagnostic


class Density(Diagnostic):
    name = "density"
    cost = 16.0
    tables = ("density", "density_nodes")
    json_tables = ("density",)
    drawn = True

    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """``density``: model, group, group_index, eigenvalue, density (on a grid); ``density_nodes``: model and
        the Lanczos nodes and weights behind it (see :func:`group_hessian_density`), seeded by ``audit.seed``."""
        pairs = audit.per_model(group_hessian_density, progress, seed=audit.seed)
        return {"density": long_form({m: pair[0] for m, pair in pairs.items()}),
                "density_nodes": long_form({m: pair[1] for m, pair in pairs.items()})}


register_diagnostic(Density())
