"""Auditing linearized models per group: the in-memory audit of two models (:mod:`.core`), the audit grid
(:mod:`.grid`), mitigated-vs-unmitigated comparisons (:mod:`.compare`), tidy results with their views
(:mod:`.results`) and checkpoint evaluation (:mod:`.evaluation`)."""

from .compare import Comparison, comparison_json, run_comparison
from .core import DIAGNOSTICS, audit_to_json, parse_diagnostics, run_audit, write_audit_csvs
from .evaluation import evaluate_checkpoint
from .grid import AuditGrid, build_audit
from .results import AuditResults, collect_from_store, load_results

__all__ = ["DIAGNOSTICS", "AuditGrid", "AuditResults", "Comparison", "audit_to_json", "build_audit",
           "collect_from_store", "comparison_json", "evaluate_checkpoint", "load_results", "parse_diagnostics",
           "run_audit", "run_comparison", "write_audit_csvs"]
