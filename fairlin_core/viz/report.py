"""A standalone HTML report of an audit: every figure of the audit page, the tables and the run configs,
in one file that opens offline (plotly.js is inlined once), for people who do not run the app.

    html = audit_report_html(results, split="test", method="snl")
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone

import pandas as pd
import plotly.io as pio

from . import audit_figures as figures
from . import tables
from ..audits.results import CLASS_RULE, AuditResults
from ..costs.profiles import DEFAULT_PROFILE, load_profile
from ..errors import FairLinError

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1, h2 { font-weight: 600; } .table { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; } th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; font-size: 0.8rem; max-height: 30rem; }
.note { color: #555; }
"""


def _table(frame: pd.DataFrame) -> str:
    """A readable table (from :mod:`fairlin_core.viz.tables`) that scrolls inside the page width."""
    return "<div class='table'>" + frame.to_html(index=False, na_rep="–", border=0) + "</div>"


def audit_report_html(results: AuditResults, *, split: str | None = None, method: str | None = None,
                      mitigation: str = "off", budget: str | None = None, profile: str = DEFAULT_PROFILE) -> str:
    """The report as one HTML document (str). ``method``: the method of the per-method sections (None =
    the first in the results); ``budget``: the budget of the snapshot and method comparison (None = the
    smallest of that method); the summary covers every method; ``profile``: the private-inference cost
    profile of the accuracy-vs-latency section."""
    split = split or results.default_split()
    style = figures.GroupStyle.of(results.group_names, results.minority_groups())
    on_split = f"· {split} split"
    methods = results.methods()
    method = method or (methods[0] if methods else None)
    meta = results.meta
    parts = [f"<h1>FairLin audit: {html.escape(str(meta.get('checkpoint', '')))} on "
             f"{html.escape(str(meta.get('dataset', '')))}</h1>",
             f"<p class='note'>Protected attribute: {html.escape(str(meta.get('group_attribute', '')))}; split "
             f"{html.escape(split)}; {len(results.runs)} runs; generated "
             f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Accuracies and relative drops are in "
             f"percent (relative drop = (base − linearized) / base × 100), gaps and drop differences in percentage "
             f"points, latency in seconds, traffic in MB; intervals are Student-t 95% across seeds. Budgets are "
             f"ReLUs kept as % of the base model's {meta.get('base_relu_count', '')} ReLUs. Groups classed by "
             f"training share: {html.escape(CLASS_RULE)}.</p>"]
    headline = results.headline(split)
    if headline:
        parts.append(f"<p><strong>{html.escape(headline['text'])}</strong></p>")
    figs = [("Majority vs minority", figures.class_lines(
        results.class_drop(split, mitigation),
        f"Majority vs minority {on_split}, mitigation {mitigation}",
        f"Relative accuracy drop per method; groups classed by training share:<br>{CLASS_RULE}"))]
    if method is not None:
        drop = results.group_drop(split, method, mitigation)
        figs.append(("Relative accuracy drop per group", figures.group_bars(
            drop, style, x="budget", y="drop_mean", low="drop_ci_low", high="drop_ci_high",
            title=f"{method}: relative accuracy drop per group {on_split}", y_title="relative drop (%)")))
        figs.append(("Accuracy per group vs ReLUs kept", figures.accuracy_lines(
            drop, style, f"{method}: accuracy per group {on_split}, 95% band")))
        if set(results.runs["mitigation"]) >= {"off", "on"}:
            effect = results.mitigation_effect(split, method)
            figs.append(("Mitigated vs unmitigated", figures.group_bars(
                effect, style, x="budget", y="drop_difference", low="drop_difference_ci_low",
                high="drop_difference_ci_high",
                title=f"{method}: drop without minus with mitigation {on_split}",
                subtitle="relative drop, in points; positive = mitigation helped; 95% intervals across seeds",
                y_title="drop difference (points)")))
        completed = results.budgets(method)
        budget = budget if budget in completed else completed[-1]
        at_budget = drop[drop["budget"] == budget]
        figs.append((f"At {budget}", figures.budget_snapshot(at_budget, style, f"{method} at {budget} {on_split}")))
        compared = results.method_comparison(split, mitigation)
        figs.append((f"Methods compared at {budget}", figures.group_bars(
            compared[compared["budget"] == budget], style, x="method", y="drop_mean",
            low="drop_ci_low", high="drop_ci_high", title=f"Methods compared at {budget} {on_split}",
            y_title="relative drop (%)", x_title="method")))
    summary = results.fairness_summary(split)
    figs.append(("Worst-group accuracy", figures.summary_lines(summary, "worst_group_accuracy",
                                                               f"Worst-group accuracy {on_split}", "accuracy (%)")))
    figs.append(("Parity gap", figures.summary_lines(summary, "parity_gap",
                                                     f"Parity gap, best − worst group {on_split}", "points")))
    try:
        front = results.cost_front(split, profile)
    except FairLinError as error:  # e.g. the base checkpoint of results from elsewhere is not on this machine
        front, missing_cost = None, str(error)
    else:
        figs.append(("Accuracy vs estimated private-inference latency", figures.cost_front(
            front, f"Accuracy vs estimated online latency ({profile}) {on_split}",
            "worst-group and minority accuracy; Pareto front across methods and budgets")))
    for i, (title, fig) in enumerate(figs):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=i == 0, default_width="100%",
                                 config={"responsive": True}))
    parts.append("<h2>Summary per method, budget and mitigation</h2>" + _table(tables.summary_table(summary)))
    parts.append(f"<h2>Pareto points: accuracy vs estimated latency ({html.escape(profile)})</h2>")
    if front is None:
        parts.append(f"<p class='note'>No cost estimate: {html.escape(missing_cost)}</p>")
    else:
        parts.append(f"<p class='note'>Profile source: {html.escape(load_profile(profile).source['paper'])}. "
                     f"Latency = compute seconds + bytes at the profile's bandwidth; network variation, batching and "
                     f"your own hardware are left out.</p>" + _table(tables.front_table(front)))
    if method is not None:
        parts.append(f"<h2>Per-group table at {html.escape(budget)} ({html.escape(method)}, mitigation "
                     f"{html.escape(mitigation)}, {html.escape(split)} split)</h2>"
                     + _table(tables.group_table(at_budget, results.minority_groups())))
    parts.append("<h2>Run configurations</h2><pre>" + html.escape(json.dumps(results.configs, indent=1)) + "</pre>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>FairLin audit</title>"
            f"<style>{STYLE}</style></head><body>" + "\n".join(parts) + "</body></html>")
