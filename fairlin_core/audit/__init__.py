"""Auditing linearized models per group: the in-memory audit of two models (:mod:`.core`), the audit grid
(:mod:`.grid`), mitigated-vs-unmitigated comparisons (:mod:`.compare`), tidy results with their views
(:mod:`.results`) and checkpoint evaluation (:mod:`.evaluation`)."""

import sys
import types

from .compare import Comparison, comparison_json, run_comparison
from .core import DIAGNOSTICS, Audit, audit, audit_models, audit_to_json, parse_diagnostics, run_audit, write_audit_csvs
from .evaluation import evaluate_checkpoint
from .grid import AuditGrid, build_audit
from .results import AuditResults, collect_from_store, load_results

__all__ = ["DIAGNOSTICS", "Audit", "AuditGrid", "audit", "audit_models", "AuditResults", "Comparison", "audit_to_json", "build_audit",
           "collect_from_store", "comparison_json", "evaluate_checkpoint", "load_results", "parse_diagnostics",
           "run_audit", "run_comparison", "write_audit_csvs"]


class _CallableWing(types.ModuleType):
    """``fairlin_core.audit(base, lin, ...)`` is :func:`.core.audit`: importing this wing makes it the
    package's ``audit`` attribute, so the wing itself answers the notebook API's ``fl.audit(...)``."""

    def __call__(self, *args, **kwargs) -> Audit:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableWing
