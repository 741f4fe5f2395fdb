"""Fairness audit: who pays for the ReLU budget, per method and budget, mitigated or not; queues missing runs."""

import json

import streamlit as st

from fairlin_core.audits import CLASS_RULE, AuditResults
from fairlin_core.costs import DEFAULT_PROFILE, list_profiles, load_profile
from fairlin_core.errors import FairLinError
from ui.errors import show_error
from fairlin_core import viz
from fairlin_core.viz import BUDGET_TITLE, audit_report_html
from ui.linearize_form import submit_recipes
from ui.jobs_panel import manager
from ui.results_source import (Rows, chart, group_style, mitigated, mitigation_labels, open_results, opened_run,
                               shipped_overlay)
from ui.shell import require_shell
from ui.state import current

require_shell()

key, results = open_results("Fairness audit")
names = results.group_names
minority = tuple(results.minority_groups())
opened = opened_run(results)
if opened is not None:  # arrived from a job card's link: show that run's method, budget and mitigation
    st.session_state.update({"audit.method": opened["method"], "audit.budget": opened["budget"],
                             "audit.mitigation": opened["mitigation"]})
    st.caption(f"Opened on run {results.run_labels().get(opened['run_id'])}.")

controls = st.columns(4)
method = controls[0].selectbox("Method", results.methods(), key="audit.method")
splits = results.splits()
if st.session_state.get("audit.split") not in splits:
    st.session_state["audit.split"] = results.default_split()
split = controls[1].selectbox("Test split", splits, key="audit.split",
                              help="balanced: every group equally represented (the default where the dataset has "
                                   "it); test: imbalanced like training")
mitigation_text = mitigation_labels(results)
mitigation = controls[2].radio("Mitigation", list(mitigation_text), key="audit.mitigation", horizontal=True,
                               format_func=mitigation_text.get)
highlight = controls[3].selectbox("Highlight a group", ["none", *names], key="audit.highlight",
                                  help="grey every other group in the per-group charts")
style = group_style(results, highlight)
on_split = f"· {split} split"
shipped = shipped_overlay(key)
overlay = {"against": shipped, "reference_name": "shipped audit"} if shipped else {}

drop = results.group_drop(split, method, mitigation)
budgets = results.budgets(method)
st.header("Who pays for the ReLU budget")
st.caption(f"Groups classed by training share: {CLASS_RULE}. Minority here: "
           f"{', '.join(results.minority_groups()) or 'none'} (warm colours); majority groups in cool colours. "
           f"Relative drop = (base − linearized) / base × 100; bands and bars are 95% intervals across seeds.")
st.plotly_chart(chart(key, viz.class_lines, Rows(AuditResults.class_drop, (split, mitigation)),
                      f"Majority vs minority {on_split}, {mitigation_text[mitigation]}",
                      f"Relative accuracy drop per method; groups classed by training share:<br>{CLASS_RULE}",
                      **overlay), key="audit.fig_classes")
if shipped:
    st.caption("Dashed lines and grey-edged diamonds: the shipped default audit (its own seeds and training "
               "protocol) at the same split, method and mitigation, drawn beside these runs, never averaged in.")
drop_rows = Rows(AuditResults.group_drop, (split, method, mitigation))
if len(budgets) > 1:
    left, right = st.columns(2)
    left.plotly_chart(chart(key, viz.group_bars, drop_rows, style, x="budget", y="drop_mean", low="drop_ci_low",
                            high="drop_ci_high", title=f"{method}: relative accuracy drop per group {on_split}",
                            y_title="relative drop (%)", unit="%", **overlay), key="audit.fig_drop")
    right.plotly_chart(chart(key, viz.accuracy_lines, drop_rows, style,
                             f"{method}: accuracy per group {on_split}, 95% band"), key="audit.fig_lines")
else:
    st.info(f"{method} has runs at one budget only ({', '.join(budgets) or 'none'}): the per-budget curves need "
            f"two; the budget below shows every group.")


@st.fragment
def budget_scrubber() -> None:
    """Re-runs alone when the slider moves: only this section is redrawn."""
    if not budgets:
        st.info(f"No {method} runs.")
        return
    if st.session_state.get("audit.budget") not in budgets:
        st.session_state["audit.budget"] = budgets[len(budgets) // 2]
    budget = st.select_slider(f"{BUDGET_TITLE} (completed budgets; fewer to the right)", budgets,
                              key="audit.budget")
    at_budget = drop[drop["budget"] == budget]
    relus = int(round(at_budget["relu_count"].mean()))
    left, right = st.columns(2)
    left.plotly_chart(chart(key, viz.budget_snapshot, drop_rows.at("budget", budget), style,
                            f"{method} at {budget} ({relus:,} ReLUs) {on_split}"), key="audit.fig_snapshot")
    compared = Rows(AuditResults.method_comparison, (split, mitigation)).at("budget", budget)
    right.plotly_chart(chart(key, viz.group_bars, compared, style, x="method", y="drop_mean", low="drop_ci_low",
                             high="drop_ci_high", title=f"Methods compared at {budget} {on_split}",
                             y_title="relative drop (%)", x_title="method", unit="%", **overlay),
                     key="audit.fig_methods")
    table = chart(key, viz.group_table, drop_rows.at("budget", budget), minority)
    st.dataframe(table, hide_index=True, key="audit.table_budget")
    st.download_button("Download this table (CSV)", lambda: table.to_csv(index=False),
                       viz.file_name("audit", method, budget, split), "text/csv", key="audit.download_budget")


st.header("Scrub the budget")
budget_scrubber()

st.header("Worst group and parity gap")
left, right = st.columns(2)
rows = Rows(AuditResults.fairness_summary, (split,))
left.plotly_chart(chart(key, viz.summary_lines, rows, "worst_group_accuracy",
                        f"Worst-group accuracy {on_split}", "accuracy (%)"), key="audit.fig_worst")
right.plotly_chart(chart(key, viz.summary_lines, rows, "parity_gap",
                         f"Parity gap, best − worst group {on_split}", "points"), key="audit.fig_gap")
summary_table = chart(key, viz.summary_table, rows)
st.dataframe(summary_table, hide_index=True, key="audit.table_summary")
st.download_button("Download the summary (CSV)", lambda: summary_table.to_csv(index=False),
                   viz.file_name("audit_summary", split), "text/csv", key="audit.download_summary")

st.header("What the ReLU budget buys")
profiles = list_profiles()
profile = st.selectbox("Private-inference protocol profile", profiles, index=profiles.index(DEFAULT_PROFILE),
                       key="audit.profile", help="per-ReLU and per-linear-layer costs from published measurements; "
                                                 "`fairlin cost --profile FILE` takes a profile of your own")
try:
    front = results.cost_front(split, profile)
except FairLinError as error:
    st.warning(str(error))
else:
    st.plotly_chart(chart(key, viz.cost_front, Rows(AuditResults.cost_front, (split, profile)),
                          f"Accuracy vs estimated online latency ({profile}) {on_split}",
                          "Pareto front across methods and budgets"), key="audit.fig_cost_front")
    source = load_profile(profile).source
    st.caption(f"Estimates from {source['paper']}. Online latency = compute + bytes at the profile's bandwidth; "
               f"no network variation, batching or hardware of your own (see the README's cost model section). "
               f"Minority groups: {CLASS_RULE}.")
    st.dataframe(chart(key, viz.front_table, Rows(AuditResults.cost_front, (split, profile))), hide_index=True,
                 key="audit.table_cost_front")

effect_of = mitigated(results)
if effect_of is not None and len(mitigation_text) > 1:
    effect_rows = Rows(AuditResults.mitigation_effect, (split, method, effect_of))
    st.header("Mitigated vs unmitigated")
    st.plotly_chart(chart(key, viz.group_bars, effect_rows, style,
                          x="budget", y="drop_difference", low="drop_difference_ci_low",
                          high="drop_difference_ci_high",
                          title=f"{method}: drop without minus with mitigation {on_split}",
                          subtitle="relative drop, in points; positive = mitigation helped; 95% intervals across "
                                   "seeds", y_title="drop difference (points)"), key="audit.fig_mitigation")
    effect_table = chart(key, viz.mitigation_table, effect_rows)
    with st.expander("Mitigated vs unmitigated, per group and budget (table)"):
        st.dataframe(effect_table, hide_index=True, key="audit.table_mitigation")
    st.download_button("Download mitigated vs unmitigated (CSV)", lambda: effect_table.to_csv(index=False),
                       viz.file_name("mitigation", method, split), "text/csv", key="audit.download_mitigation")

st.header("Runs")
missing = results.missing_runs()
for skipped in results.meta.get("skipped", []):
    st.caption(f"Not run: {skipped['method']} at {skipped['budget']}: {skipped['reason']}.")
if len(missing):
    plural = len(missing) != 1
    st.warning(f"{len(missing)} run{'s' if plural else ''} of this grid {'are' if plural else 'is'} missing.")
    st.dataframe(missing.assign(recipe=[recipe.describe() for recipe in missing["recipe"]]), hide_index=True,
                 key="audit.table_missing")
    if key != "shipped" and st.button(f"Queue the missing run{'s' if plural else ''}", key="audit.queue_missing",
                                      icon=":material/playlist_add:"):
        choice = current()
        try:  # each missing cell runs the recipe of the series on screen
            ids = submit_recipes(manager(), choice.checkpoint_path, list(missing["recipe"]), group=choice.group,
                                 data_root=choice.data_root)
            st.success(f"Queued {len(ids)} run(s); they appear here when done.")
        except Exception as error:  # every error: one readable message, never a traceback
            show_error(error)
run_ids = list(results.runs["run_id"])
run_labels = results.run_labels()
run_id = st.selectbox("Run configuration", run_ids, key="audit.run", format_func=lambda r: run_labels.get(r, r))
st.download_button("Download the run's config (JSON)", lambda: json.dumps(results.configs.get(run_id, {}), indent=1),
                   viz.file_name(run_id, suffix="json"), "application/json", key="audit.download_config")
st.download_button("Download every table (CSV)", lambda: results.groups.merge(results.runs, on="run_id").to_csv(index=False),
                   "audit_groups.csv", "text/csv", key="audit.download_all")
if st.button("Build the HTML report", key="audit.build_report", icon=":material/description:"):
    st.session_state["audit.report"] = audit_report_html(results, split=split, method=method, mitigation=mitigation,
                                                         budget=st.session_state.get("audit.budget"), profile=profile)
if st.session_state.get("audit.report"):
    st.download_button("Download the HTML report", st.session_state["audit.report"], "fairlin_audit.html",
                       "text/html", key="audit.download_report")
