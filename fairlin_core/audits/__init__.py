"""Auditing linearized models per group: the in-memory audit of two models (:mod:`.core`, :func:`audit` is
the notebook's ``fl.audit``) by the registered diagnostics (:mod:`.diagnostics`: a new one subclasses
:class:`Diagnostic` and calls :func:`register_diagnostic`), the audit grid (:mod:`.grid`), mitigated-vs-unmitigated
comparisons (:mod:`.comparison`, :func:`compare` is ``fl.compare``), tidy results with their views (:mod:`.results`)
and checkpoint evaluation (:mod:`.evaluation`).

Names load on first use, so importing the wing costs nothing (reading results does import torch: every run's
recipe is read as a :class:`~fairlin_core.linearizers.LinearizeRecipe`).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **{name: f"fairlin_core.audits.core:{name}" for name in (
        "Audit", "audit", "audit_models", "audit_to_json", "run_audit", "write_audit_csvs")},
    **{name: f"fairlin_core.audits.diagnostics:{name}" for name in (
        "DIAGNOSTICS", "AuditContext", "Diagnostic", "parse_diagnostics", "register_diagnostic")},
    **{name: f"fairlin_core.audits.comparison:{name}" for name in ("Comparison", "comparison_json", "run_comparison")},
    "evaluate_checkpoint": "fairlin_core.audits.evaluation:evaluate_checkpoint",
    "compare": "fairlin_core.audits.comparison:compare",
    "AuditGrid": "fairlin_core.audits.grid:AuditGrid",
    "build_audit": "fairlin_core.audits.grid:build_audit",
    **{name: f"fairlin_core.audits.results:{name}" for name in (
        "CLASS_RULE", "SHIPPED_AUDIT", "AuditResults", "classify_groups", "default_split", "load_results")},
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)
