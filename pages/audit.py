"""Fairness audit: who pays for the ReLU budget, per method and budget, mitigated or not; queues missing runs."""

import json

import streamlit as st

from fairlin_core.audit.results import AuditResults
from fairlin_core.cost.profiles import DEFAULT_PROFILE, list_profiles, load_profile
from fairlin_core.errors import FairLinError
from ui.errors import show_error
from fairlin_core.viz import audit_figures as figures
from fairlin_core.viz.report import audit_report_html
from ui.linearize_form import job_configs, submit_jobs
from ui.jobs_panel import manager
from ui.results_source import MITIGATION_LABELS, Rows, chart, open_results
from ui.shell import require_shell
from ui.state import current

require_shell()

key, results = open_results("Fairness audit")
names = results.group_names

controls = st.columns(3)
method = controls[0].selectbox("Method", results.methods(), key="audit_method")
split = controls[1].selectbox("Test split", results.splits(), key="audit_split",
                              help="test: imbalanced like training; balanced: every held-out example")
mitigations = [m for m in ("off", "on") if m in set(results.runs["mitigation"])]
mitigation = controls[2].radio("Mitigation", mitigations, key="audit_mitigation", horizontal=True,
                               format_func=MITIGATION_LABELS.get)

drop = results.group_drop(split, method, mitigation)
st.header("Who pays for the ReLU budget")
left, right = st.columns(2)
drop_rows = Rows(AuditResults.group_drop, (split, method, mitigation))
left.plotly_chart(chart(key, figures.group_bars, drop_rows, names, x="budget", y="drop_mean", low="drop_ci_low",
                        high="drop_ci_high", title=f"{method}: relative accuracy drop per group",
                        y_title="relative drop (%)"), key="fig_drop")
right.plotly_chart(chart(key, figures.accuracy_lines, drop_rows, names,
                         f"{method}: accuracy vs ReLU count (95% band across seeds)"), key="fig_lines")


@st.fragment
def budget_scrubber() -> None:
    """Re-runs alone when the slider moves: only this section is redrawn."""
    budgets = results.budgets(method)
    if not budgets:
        st.info(f"No {method} runs.")
        return
    if st.session_state.get("audit_budget") not in budgets:
        st.session_state["audit_budget"] = budgets[len(budgets) // 2]
    budget = st.select_slider("ReLU budget (completed budgets)", budgets, key="audit_budget")
    at_budget = drop[drop["budget"] == budget]
    relus = int(round(at_budget["relu_count"].mean()))
    left, right = st.columns(2)
    left.plotly_chart(chart(key, figures.budget_snapshot, drop_rows.at("budget", budget), names,
                            f"{method} at {budget} ({relus:,} ReLUs)"), key="fig_snapshot")
    compared = Rows(AuditResults.method_comparison, (split, mitigation)).at("budget", budget)
    right.plotly_chart(chart(key, figures.group_bars, compared, names, x="method", y="drop_mean", low="drop_ci_low",
                             high="drop_ci_high", title=f"Methods compared at {budget}", y_title="relative drop (%)"),
                       key="fig_methods")
    table = at_budget[["group", "train_n", "n", "base_accuracy", "accuracy_mean", "accuracy_ci_low",
                       "accuracy_ci_high", "drop_mean", "n_seeds"]].rename(columns={"n": "test_n"})
    st.dataframe(table, hide_index=True, key="table_budget")
    st.download_button("Download this table (CSV)", table.to_csv(index=False), f"audit_{method}_{budget}.csv",
                       "text/csv", key="download_budget")


st.header("Scrub the budget")
budget_scrubber()

st.header("Worst group and parity gap")
summary = results.fairness_summary(split)
left, right = st.columns(2)
rows = Rows(AuditResults.fairness_summary, (split,))
left.plotly_chart(chart(key, figures.summary_lines, rows, "worst_group_accuracy", "Worst-group accuracy",
                        "accuracy (%)"), key="fig_worst")
right.plotly_chart(chart(key, figures.summary_lines, rows, "parity_gap", "Parity gap (best − worst group)",
                         "points"), key="fig_gap")
st.dataframe(summary, hide_index=True, key="table_summary")
st.download_button("Download the summary (CSV)", summary.to_csv(index=False), "audit_summary.csv", "text/csv",
                   key="download_summary")

st.header("What the ReLU budget buys")
profiles = list_profiles()
profile = st.selectbox("Private-inference protocol profile", profiles, index=profiles.index(DEFAULT_PROFILE),
                       key="audit_profile", help="per-ReLU and per-linear-layer costs from published measurements; "
                                                 "`fairlin cost --profile FILE` takes a profile of your own")
try:
    front = results.cost_front(split, profile)
except FairLinError as error:
    st.warning(str(error))
else:
    st.plotly_chart(chart(key, figures.cost_front, Rows(AuditResults.cost_front, (split, profile)),
                          f"Accuracy vs estimated online latency ({profile}), Pareto front across methods and "
                          f"budgets"), key="fig_cost_front")
    source = load_profile(profile).source
    st.caption(f"Estimates from {source['paper']}. Online latency = compute + bytes at the profile's bandwidth; "
               f"no network variation, batching or hardware of your own (see the README's cost model section).")
    st.dataframe(front[front["front_worst"] | front["front_minority"]], hide_index=True, key="table_cost_front")

if set(mitigations) == {"off", "on"}:
    st.header("Mitigated vs unmitigated")
    effect = results.mitigation_effect(split, method)
    st.plotly_chart(chart(key, figures.group_bars, Rows(AuditResults.mitigation_effect, (split, method)), names,
                          x="budget", y="drop_difference",
                          title=f"{method}: relative drop without minus with mitigation "
                                f"(positive = mitigation helped the group)",
                          y_title="drop difference (points)"), key="fig_mitigation")
    st.download_button("Download mitigated vs unmitigated (CSV)", effect.to_csv(index=False),
                       f"mitigation_{method}.csv", "text/csv", key="download_mitigation")

st.header("Runs")
missing = results.missing_runs()
for skipped in results.meta.get("skipped", []):
    st.caption(f"Not run: {skipped['method']} at {skipped['budget']}: {skipped['reason']}.")
if len(missing):
    plural = len(missing) != 1
    st.warning(f"{len(missing)} run{'s' if plural else ''} of this grid {'are' if plural else 'is'} missing.")
    st.dataframe(missing, hide_index=True, key="table_missing")
    if key != "shipped" and st.button(f"Queue the missing run{'s' if plural else ''}", key="queue_missing",
                                      icon=":material/playlist_add:"):
        choice = current()
        try:
            configs = [c for row in missing.itertuples() for c in job_configs(
                choice["checkpoint_path"], row.method, row.budget, [row.seed], snl_epochs=100, finetune_epochs=20,
                mitigation=row.mitigation, group=choice["group"], data_root=choice["data_root"])]
            st.success(f"Queued {len(submit_jobs(manager(), configs))} run(s); they appear here when done.")
        except Exception as error:  # every error: one readable message, never a traceback
            show_error(error)
run_ids = list(results.runs["run_id"])
run_id = st.selectbox("Run configuration", run_ids, key="audit_run")
st.download_button("Download the run's config (JSON)", json.dumps(results.configs.get(run_id, {}), indent=1),
                   f"{run_id}.json", "application/json", key="download_config")
st.download_button("Download every table (CSV)", results.groups.merge(results.runs, on="run_id").to_csv(index=False),
                   "audit_groups.csv", "text/csv", key="download_all")
if st.button("Build the HTML report", key="build_report", icon=":material/description:"):
    st.session_state["audit_report"] = audit_report_html(results, split=split, method=method, mitigation=mitigation,
                                                         budget=st.session_state.get("audit_budget"), profile=profile)
if st.session_state.get("audit_report"):
    st.download_button("Download the HTML report", st.session_state["audit_report"], "fairlin_audit.html",
                       "text/html", key="download_report")
