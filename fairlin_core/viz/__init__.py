"""Plotly figures (one colour per group everywhere) and the standalone HTML report. Figures take the tidy
tables of :mod:`fairlin_core.audits` and :mod:`fairlin_core.toy` and compute nothing of their own:
audit figures (:mod:`.audit_figures`), dataset and job figures (:mod:`.figures`), toy figures
(:mod:`.toy_figures`), display tables (:mod:`.tables`) and the report (:mod:`.report`).

Names load on first use, so importing the wing never imports plotly.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **{name: f"fairlin_core.viz.audit_figures:{name}" for name in (
        "BUDGET_TITLE", "GroupStyle", "group_colors", "budget_axis", "group_bars", "accuracy_lines", "class_lines",
        "budget_snapshot", "base_accuracy_bars", "summary_lines", "cost_front", "diagnostic_lines",
        "diagnostic_scatter", "density_lines", "distance_lines", "bound_scatter", "attribution_maps")},
    **{name: f"fairlin_core.viz.figures:{name}" for name in (
        "group_sizes_figure", "group_accuracy_figure", "job_curve_figure")},
    **{name: f"fairlin_core.viz.toy_figures:{name}" for name in (
        "boundary_figure", "accuracy_bars_figure", "loss_figure", "piecewise_figure", "share_sweep_figure")},
    **{name: f"fairlin_core.viz.tables:{name}" for name in (
        "group_table", "summary_table", "front_table", "mitigation_table", "diagnostics_table", "file_name")},
    "audit_report_html": "fairlin_core.viz.report:audit_report_html",
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)
