"""``attr``: mean |attribution| maps per group (saliency, integrated gradients) for both models."""

from __future__ import annotations

import pandas as pd

from ...runtime import ProgressFn
from .base import AuditContext, Diagnostic, long_form, register_diagnostic


class Attributions(Diagnostic):
    name = "attr"
    cost = 4.0
    tables = json_tables = ("attr",)
    offered = drawn = True

    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """``attr``: model, then one row per group, method and input element (see :func:`group_attributions`)."""
        from ...metrics.attributions import group_attributions  # captum takes seconds to import; only when asked
        return {"attr": long_form(audit.per_model(group_attributions, progress))}


register_diagnostic(Attributions())
