"""Auditing linearized models per group: the in-memory audit of two models (:mod:`.core`), the audit grid
(:mod:`.grid`), mitigated-vs-unmitigated comparisons (:mod:`.compare`), tidy results with their views
(:mod:`.results`) and checkpoint evaluation (:mod:`.evaluation`).

Names load on first use, so reading results (:func:`load_results`) never imports torch. The wing itself
is callable: ``fairlin_core.audits(base, lin, ...)`` is :func:`.core.audit`, which is how ``fl.audit(...)``
keeps working after any ``import fairlin_core.audits.<module>`` has made the wing the package's attribute.
"""

from ..lazy import callable_wing, lazy_exports

_EXPORTS = {
    **{name: f"fairlin_core.audits.core:{name}" for name in (
        "DIAGNOSTICS", "Audit", "audit", "audit_models", "audit_to_json", "parse_diagnostics", "run_audit",
        "write_audit_csvs")},
    **{name: f"fairlin_core.audits.comparison:{name}" for name in ("Comparison", "comparison_json", "run_comparison")},
    "evaluate_checkpoint": "fairlin_core.audits.evaluation:evaluate_checkpoint",
    "compare": "fairlin_core.audits.comparison:compare",
    "AuditGrid": "fairlin_core.audits.grid:AuditGrid",
    "build_audit": "fairlin_core.audits.grid:build_audit",
    **{name: f"fairlin_core.audits.results:{name}" for name in (
        "SHIPPED_AUDIT", "AuditResults", "collect_from_store", "load_results")},
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)
callable_wing(__name__, "fairlin_core.audits.core:audit")
