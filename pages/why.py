"""Why (diagnostics): the paper's explanations per group: gradient norms, Hessian spectra, parameter
distance, distance to the decision boundary, the Theorem 4.4 bound and attribution maps (read-only)."""

import streamlit as st

from fairlin_core.audits import DIAGNOSTICS, AuditResults
from fairlin_core.errors import FairLinError
from fairlin_core import viz
from fairlin_core.viz import BUDGET_TITLE
from ui.results_source import Rows, chart, group_style, mitigation_labels, open_results
from ui.shell import require_shell
from ui.state import current

require_shell()

key, results = open_results("Why (diagnostics)")
names = results.group_names
if results.diagnostics.empty:
    drawn = ",".join(name for name, diagnostic in DIAGNOSTICS.items() if diagnostic.drawn)
    st.info("These runs carry no diagnostics. Queue runs with diagnostics (CLI: `python -m fairlin_core sweep ... "
            f"--diagnostics {drawn}`), or pick the shipped default audit.")
    st.stop()

with_diagnostics = results.runs[results.runs["run_id"].isin(set(results.diagnostics["run_id"]))]
controls = st.columns(3)
method = controls[0].selectbox("Method", [m for m in results.methods() if m in set(with_diagnostics["method"])],
                                key="why.method")
mitigation_text = mitigation_labels(results)
mitigations = [m for m in mitigation_text if m in set(with_diagnostics["mitigation"])]
mitigation = controls[1].radio("Mitigation", mitigations, key="why.mitigation", horizontal=True,
                               format_func=mitigation_text.get)
highlight = controls[2].selectbox("Highlight a group", ["none", *names], key="why.highlight",
                                  help="grey every other group")
style = group_style(results, highlight)
diag = results.diagnostics_by_budget(method, mitigation)
seeds = int(diag["n_seeds"].max()) if len(diag) else 0
on_split = "· test split"  # the split the diagnostics were measured on (run_audit's)
st.caption(f"Diagnostics were measured on the test split (the split the runs were audited on), mean over {seeds} "
           f"seed(s) that have them; the base model is the point at 100%. Minority groups (warm colours): "
           f"{', '.join(results.minority_groups()) or 'none'}.")

st.header("Gradient norms and curvature per group")
left, right = st.columns(2)
rows = Rows(AuditResults.diagnostics_by_budget, (method, mitigation))
left.plotly_chart(chart(key, viz.diagnostic_lines, rows, style, "grad_norm",
                        f"Group gradient norm ||g_a|| (Figure 3) {on_split}", "||∇ loss_a|| (log)", log_y=True),
                  key="why.fig_grad")
right.plotly_chart(chart(key, viz.diagnostic_lines, rows, style, "top_eigenvalue",
                         f"Top Hessian eigenvalue per group (Figure 4) {on_split}", "λ_max(H_a) (log)", log_y=True),
                   key="why.fig_hessian")
left, right = st.columns(2)
left.plotly_chart(chart(key, viz.diagnostic_scatter, rows, style, "grad_norm", "group gradient norm",
                        f"Accuracy vs gradient norm {on_split}"), key="why.fig_scatter_grad")
right.plotly_chart(chart(key, viz.diagnostic_scatter, rows, style, "input_margin_mean",
                         "mean distance to the boundary (input space)",
                         f"Boundary distance vs accuracy (Figure 8) {on_split}"), key="why.fig_scatter_boundary")
st.plotly_chart(chart(key, viz.distance_lines, Rows(AuditResults.parameter_distances),
                      "Parameter distance ||θ_lin − θ_base|| vs ReLUs kept"), key="why.fig_distance")
st.download_button("Download the diagnostics (CSV)", diag.to_csv(index=False),
                   viz.file_name("diagnostics", method, mitigation), "text/csv", key="why.download_diagnostics")

st.header("At one budget")
budgets = [b for b in dict.fromkeys(diag["budget"]) if b != "base"]
if not budgets:
    st.info(f"No diagnostics of linearized {method} models ({mitigation_text[mitigation]}).")
    st.stop()
if st.session_state.get("why.budget") not in budgets:
    st.session_state["why.budget"] = budgets[len(budgets) // 2]
budget = st.select_slider(f"{BUDGET_TITLE} (fewer to the right)", budgets, key="why.budget")
at_budget = diag[diag["budget"] == budget]
agreement = results.bound_agreement(method, budget, mitigation)
st.plotly_chart(chart(key, viz.bound_scatter, rows.at("budget", budget), style,
                      f"Theorem 4.4 at {budget}: bound vs measured excess loss {on_split}",
                      f"Spearman ρ = {agreement['spearman']:.2f} across {agreement['n_groups']} groups"),
                key="why.fig_bound")
st.markdown(agreement["text"])
st.dataframe(viz.diagnostics_table(at_budget), hide_index=True, key="why.table_bound")

density_run = results.diagnostic_run(method, budget, mitigation, "density")
if density_run is not None:
    st.plotly_chart(chart(key, viz.density_lines, Rows(AuditResults.run_rows, ("density", density_run)),
                          style, f"Hessian eigenvalue density per group {on_split}",
                          f"run {results.run_labels().get(density_run, density_run)}"), key="why.fig_density")
attribution_run = results.diagnostic_run(method, budget, mitigation, "attributions")
shape = results.meta.get("input_shape")
if attribution_run is not None and shape:
    group = st.selectbox("Group for the attribution maps", names, index=len(names) - 1, key="why.group")
    attributions = Rows(AuditResults.run_rows, ("attributions", attribution_run))
    try:
        mean_input = results.mean_inputs("test", current().data_root)
    except FairLinError as error:  # the base checkpoint or its data are not on this machine
        mean_input = None
        st.caption(f"No mean input image: {error}")
    st.plotly_chart(chart(key, viz.attribution_maps, attributions, group, tuple(shape),
                          f"Mean |attribution| of group {group} {on_split}",
                          mean_input=mean_input, subtitle=f"base vs linearized; run "
                                                          f"{results.run_labels().get(attribution_run, attribution_run)}"),
                    key="why.fig_attr")
if density_run is None and attribution_run is None:
    st.caption("No Hessian density or attribution maps at this budget (they are computed for the unmitigated runs "
               "of the diagnostic seed).")
