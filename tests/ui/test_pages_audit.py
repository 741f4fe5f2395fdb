"""Fairness audit and Why (diagnostics) pages through AppTest, on the shipped default audit (what a fresh
install opens on) and on an empty run store."""

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairlin_core.jobs import get_manager
from conftest import APP, job_config



@pytest.fixture
def app(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRLIN_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "store"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    yield at
    get_manager(tmp_path / "store").shutdown()


def _titles(at) -> list[str]:
    layouts = [json.loads(chart.proto.spec)["layout"] for chart in at.get("plotly_chart")]
    return [layout["title"]["text"] for layout in layouts if "title" in layout]


def test_audit_page_opens_on_the_shipped_default_audit(app):
    app.switch_page("pages/audit.py").run()
    assert not app.exception and not app.error
    assert app.title[0].value == "Fairness audit"
    caption = app.caption[0].value
    assert "digits_resnet18" in caption and "snl, deepreduce, random" in caption and "seeds 0, 1, 2" in caption
    assert [h.value for h in app.header] == ["Who pays for the ReLU budget", "Scrub the budget",
                                             "Worst group and parity gap", "What the ReLU budget buys",
                                             "Mitigated vs unmitigated", "Runs"]
    assert len(app.get("plotly_chart")) == 9
    assert app.select_slider(key="audit.budget").options == ["20%", "10%", "5%", "2%", "1%", "0.5%"]
    table = app.dataframe[0].value
    assert list(table["Group"]) == [str(d) for d in range(10)] and (table["Seeds"] == 3).all()
    assert list(table["Class"]) == ["majority"] * 5 + ["minority"] * 5
    assert all(re.fullmatch(r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]", v) for v in table["Accuracy (%) [95% CI]"])
    assert any("deepreduce at 1%" in c.value for c in app.caption)  # skipped budgets are explained


def test_audit_budget_method_and_mitigation_change_what_is_shown(app):
    app.switch_page("pages/audit.py").run()
    app.select_slider(key="audit.budget").set_value("0.5%").run()
    assert any(t.startswith("snl at 0.5% (38 ReLUs)") for t in _titles(app))
    at_half = app.dataframe[0].value
    app.select_slider(key="audit.budget").set_value("20%").run()
    assert any(t.startswith("snl at 20% (1,536 ReLUs)") for t in _titles(app))
    assert not app.dataframe[0].value.equals(at_half)

    app.selectbox(key="audit.method").set_value("deepreduce").run()
    assert app.select_slider(key="audit.budget").options == ["20%", "10%", "5%", "2%"]
    assert "deepreduce: relative accuracy drop per group · balanced split" in _titles(app)

    before = app.dataframe[0].value
    # the mitigation is chosen by name and reads as its runs were set (the shipped audit's lagrangian)
    assert app.radio(key="audit.mitigation").options == ["plain finetune", "mitigated: lagrangian mu 0.01"]
    app.radio(key="audit.mitigation").set_value("lagrangian").run()
    assert not app.dataframe[0].value.equals(before)
    app.selectbox(key="audit.split").set_value("balanced").run()
    assert not app.exception and not app.error


def _cost_chart(app) -> dict:
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return next(c for c in charts if c["layout"]["title"]["text"].startswith("Accuracy vs estimated online latency"))


def _front_table(app):
    return next(d.value for d in app.dataframe if "On the worst-group front" in d.value.columns)


def test_audit_page_shows_accuracy_vs_estimated_latency_with_the_front(app):
    app.switch_page("pages/audit.py").run()
    assert app.selectbox(key="audit.profile").options == ["delphi", "delphi-client-garbler"]
    chart = _cost_chart(app)
    assert chart["layout"]["title"]["text"].startswith("Accuracy vs estimated online latency (delphi)")
    names = {trace["name"] for trace in chart["data"]}
    assert {"base model", "Pareto front", "snl, lagrangian", "deepreduce, plain finetune"} <= names
    fronts = [t for t in chart["data"] if t["name"] == "Pareto front"]
    assert len(fronts) == 2 and all(len(t["x"]) >= 2 for t in fronts)  # worst group and minority panels
    table = _front_table(app)
    assert (table["On the worst-group front"] | table["On the minority front"]).all() and "base" in set(table["Method"])
    delphi_latency = table["Online latency (s)"].tolist()
    app.selectbox(key="audit.profile").set_value("delphi-client-garbler").run()
    assert not app.exception and not app.error
    assert "(delphi-client-garbler)" in _cost_chart(app)["layout"]["title"]["text"]
    assert _front_table(app)["Online latency (s)"].tolist() != delphi_latency


def test_audit_page_offers_downloads_and_a_standalone_report(app):
    app.switch_page("pages/audit.py").run()
    labels = [b.proto.label for b in app.get("download_button")]
    assert {"Download this table (CSV)", "Download the summary (CSV)", "Download the run's config (JSON)",
            "Download every table (CSV)"} <= set(labels)
    app.button(key="audit.build_report").click().run()
    assert "Download the HTML report" in [b.proto.label for b in app.get("download_button")]
    assert not app.exception


def test_why_page_shows_the_diagnostics_across_budgets(app):
    app.switch_page("pages/why.py").run()
    assert not app.exception and not app.error
    titles = _titles(app)
    assert {"Group gradient norm ||g_a|| (Figure 3) · test split", "Top Hessian eigenvalue per group (Figure 4) · "
            "test split", "Boundary distance vs accuracy (Figure 8) · test split"} <= set(titles)
    assert any(t.startswith("Hessian eigenvalue density per group") for t in titles)
    assert any(t.startswith("Mean |attribution| of group 9") for t in titles)
    app.select_slider(key="why.budget").set_value("0.5%").run()
    assert "Theorem 4.4 at 0.5%: bound vs measured excess loss · test split" in _titles(app)
    app.selectbox(key="why.method").set_value("random").run()
    assert "Theorem 4.4 at 0.5%: bound vs measured excess loss · test split" in _titles(app)
    app.radio(key="why.mitigation").set_value("lagrangian").run()
    assert not any(t.startswith("Hessian eigenvalue density") for t in _titles(app))  # detail: unmitigated only
    assert not app.exception


def test_another_dataset_without_runs_explains_what_to_do(app):
    # a sidebar choice is simulated by a fresh app whose session already holds it (see test_pages_dashboard)
    toy = AppTest.from_file(APP, default_timeout=120)
    toy.session_state["sidebar.dataset"] = "toy2d"
    toy.run()
    for page in ("pages/audit.py", "pages/why.py"):
        toy.switch_page(page).run()
        assert not toy.exception
        assert "No finished runs of toy2d_mlp grouped by class yet" in toy.info[0].value


def test_run_store_results_offer_to_queue_the_missing_cells(app, tmp_path):
    toy = str(Path(APP).parent / "checkpoints" / "toy2d_mlp.safetensors")
    manager = get_manager(tmp_path / "store")
    ids = [manager.submit(job_config(toy, "random", budget, seed=seed, finetune={"epochs": 1}))
           for budget, seed in ((16, 0), (16, 1), (8, 0))]  # (8, 1) is the hole of this 2 x 2 grid
    assert manager.wait(ids, timeout=120)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["sidebar.dataset"] = "toy2d"
    at.run()
    at.switch_page("pages/audit.py").run()
    assert not at.exception and not at.error
    assert "3 runs of toy2d_mlp.safetensors on toy2d grouped by class" in at.caption[0].value
    assert at.select_slider(key="audit.budget").options == ["50%", "25%"]
    assert "1 run of this grid is missing." in at.warning[0].value
    at.button(key="audit.queue_missing").click().run()
    assert "Queued 1 run(s)" in at.success[0].value


def test_queueing_the_missing_runs_submits_the_recipe_on_screen_and_fills_its_cells(app, tmp_path):
    """A groupdro series of SNL 2 / finetune 1 epochs with a hole: the queued run carries that recipe (not 100 / 20
    epochs and the lagrangian), and once it has run the series is complete."""
    toy = str(Path(APP).parent / "checkpoints" / "toy2d_mlp.safetensors")
    manager = get_manager(tmp_path / "store")
    ids = [manager.submit(job_config(toy, "snl", budget, snl={"epochs": 2}, finetune={"epochs": 1},
                                    mitigation=mitigation))
           for budget, mitigation in ((16, None), (16, "groupdro"), (8, None))]  # (8, groupdro) is the hole
    assert manager.wait(ids, timeout=300)

    def audit_page() -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state["sidebar.dataset"] = "toy2d"
        at.run()
        at.switch_page("pages/audit.py").run()
        assert not at.exception and not at.error
        return at

    at = audit_page()
    assert at.radio(key="audit.mitigation").options == ["plain finetune", "mitigated: groupdro eta 0.01"]
    assert "1 run of this grid is missing." in at.warning[0].value
    at.button(key="audit.queue_missing").click().run()
    assert "Queued 1 run(s)" in at.success[0].value
    [queued] = [r for r in manager.store.list_runs() if r["id"] not in ids]
    config = queued["config"]
    assert (config["method"], config["budget"], config["seed"]) == ("snl", "25%", 0)
    assert config["snl"]["epochs"] == 2 and config["finetune"]["epochs"] == 1
    assert config["mitigation"]["method"] == "groupdro"
    assert manager.wait([queued["id"]], timeout=300)
    at = audit_page()
    assert "4 runs of toy2d_mlp.safetensors" in at.caption[0].value
    assert not any("missing" in w.value for w in at.warning)


def _charts(app) -> dict[str, dict]:
    return {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in app.get("plotly_chart")}


def test_audit_opens_on_the_balanced_split_with_the_majority_minority_aggregate_first(app):
    app.switch_page("pages/audit.py").run()
    assert app.selectbox(key="audit.split").value == "balanced"
    titles = _titles(app)
    assert titles[0] == "Majority vs minority · balanced split, plain finetune"
    per_chart = [t for t in titles if not t.startswith("Accuracy vs estimated")]
    assert all("balanced split" in t for t in per_chart)  # the split is in every chart title
    assert any("below an equal share" in c.value for c in app.caption)  # the class rule is shown
    aggregate = _charts(app)[titles[0]]
    lines = [t for t in aggregate["data"] if t.get("mode") == "lines+markers"]
    assert {t["name"] for t in lines} == {"majority groups", "minority groups"} and len(lines) == 6  # x 3 methods
    bands = [t for t in aggregate["data"] if t.get("fill") == "toself"]
    assert len(bands) == 6  # a 95% interval across seeds for every line
    minority_snl = next(t for t in lines if t["name"] == "minority groups")
    majority_snl = next(t for t in lines if t["name"] == "majority groups")
    assert minority_snl["y"][0] > majority_snl["y"][0]  # at 0.5% the minority pays more (x runs 0.5 .. 20)


def test_every_budget_axis_runs_from_many_to_few_relus_with_ticks_at_the_grid(app):
    app.switch_page("pages/audit.py").run()
    charts = _charts(app)
    lines = charts["snl: accuracy per group · balanced split, 95% band"]["layout"]["xaxis"]
    assert lines["title"]["text"] == "ReLUs kept (% of base)" and lines["type"] == "log"
    assert lines["autorange"] == "reversed" and lines["ticktext"] == ["20%", "10%", "5%", "2%", "1%", "0.5%"]
    assert lines["tickvals"] == [20.0, 10.0, 5.0, 2.0, 1.0, 0.5]
    bars = charts["snl: relative accuracy drop per group · balanced split"]
    assert bars["layout"]["xaxis"]["categoryarray"] == ["20%", "10%", "5%", "2%", "1%", "0.5%"]
    assert "ReLUs" in bars["data"][0]["hovertemplate"]
    for chart in charts.values():  # legends are horizontal, below the plot, and never scroll
        legend = chart["layout"].get("legend", {})
        assert legend.get("orientation") == "h" and legend.get("y", 0) < 0 and legend.get("maxheight") == 1


def test_minority_groups_are_warm_and_a_highlight_greys_the_others(app):
    from fairlin_core.viz.audit_figures import MAJORITY_COLORS, MINORITY_COLORS, MUTED
    app.switch_page("pages/audit.py").run()
    bars = _charts(app)["snl: relative accuracy drop per group · balanced split"]["data"]
    colors = {t["name"].split(" ")[0]: t["marker"]["color"] for t in bars}
    assert all(colors[str(g)] in MAJORITY_COLORS for g in range(5))
    assert all(colors[str(g)] in MINORITY_COLORS for g in range(5, 10)) and len(set(colors.values())) == 10
    assert all(t["error_y"]["color"] == "#8c8c8c" for t in bars)  # error bars readable on both themes
    app.selectbox(key="audit.highlight").set_value("8").run()
    bars = _charts(app)["snl: relative accuracy drop per group · balanced split"]["data"]
    highlighted = {t["name"].split(" ")[0]: t["marker"]["color"] for t in bars}
    assert highlighted["8"] == colors["8"] and all(highlighted[g] == MUTED for g in highlighted if g != "8")
    app.switch_page("pages/why.py").run()  # the same group has the same colour on the Why page
    grad = _charts(app)["Group gradient norm ||g_a|| (Figure 3) · test split"]["data"]
    assert {t["name"].split(" ")[0]: t["line"]["color"] for t in grad}["8"] == colors["8"]


def test_mitigation_chart_has_intervals_and_downloads_carry_no_percent_sign(app):
    app.switch_page("pages/audit.py").run()
    title = next(t for t in _titles(app) if "without minus with mitigation" in t)
    bars = _charts(app)[title]["data"]
    assert all(t["error_y"]["array"] for t in bars)
    from fairlin_core.viz.tables import file_name  # what every download of the audit pages is named by
    assert file_name("audit", "snl", "0.5%", "balanced") == "audit_snl_0.5pct_balanced.csv"
    assert file_name("random-1%-seed0-mit-off", suffix="json") == "random-1pct-seed0-mit-off.json"


def test_why_page_scatters_the_bound_with_its_rank_correlation_and_logs_every_density_axis(app):
    app.switch_page("pages/why.py").run()
    charts = _charts(app)
    bound = charts["Theorem 4.4 at 2%: bound vs measured excess loss · test split"]
    assert bound["layout"]["yaxis"]["type"] == "log" and len(bound["data"]) == 10
    assert all(t["mode"] == "markers+text" for t in bound["data"])
    assert any("Spearman rank correlation" in m.value and "median" in m.value for m in app.markdown)
    density = next(c for t, c in charts.items() if t.startswith("Hessian eigenvalue density"))
    axes = [v for k, v in density["layout"].items() if k.startswith("yaxis")]
    assert len(axes) == 2 and all(a["type"] == "log" for a in axes)
    attribution = next(c for t, c in charts.items() if t.startswith("Mean |attribution| of group 9"))
    titles = [a["text"] for a in attribution["layout"]["annotations"]]
    assert titles[0] == "mean input<br>of group 9" and len(attribution["data"]) == 6  # input + 2 maps, 2 models


def test_a_job_card_link_opens_the_audit_on_that_run(app, tmp_path):
    toy = str(Path(APP).parent / "checkpoints" / "toy2d_mlp.safetensors")
    manager = get_manager(tmp_path / "store")
    ids = [manager.submit(job_config(toy, "random", budget, seed=0, finetune={"epochs": epochs}))
           for budget, epochs in ((16, 1), (8, 1), (8, 2))]
    assert manager.wait(ids, timeout=120)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["sidebar.dataset"] = "toy2d"
    at.query_params["run"] = ids[1]
    at.run()
    at.switch_page("pages/audit.py").run()
    assert not at.exception and not at.error
    # runs of different protocols (finetune 1 vs 2 epochs) are never one series: a protocol picker
    assert at.selectbox(key="results_source.recipe").options == ["finetune 1 ep · plain finetune",
                                                          "finetune 2 ep · plain finetune"]
    assert at.select_slider(key="audit.budget").value == "25%"  # the linked run's budget
    assert any("Opened on run random 25% · seed 0 · finetune 1 ep · plain finetune" in c.value for c in at.caption)
    labels = at.selectbox(key="audit.run").options
    assert labels and all("seed 0" in label and "finetune" in label for label in labels)


def test_run_store_of_the_shipped_checkpoint_overlays_the_shipped_audit_on_demand(app, tmp_path):
    from conftest import DIGITS
    manager = get_manager(tmp_path / "store")
    ids = [manager.submit(job_config(DIGITS, "random", budget, seed=0, finetune={"epochs": 1}))
           for budget in ("10%", "1%")]
    assert manager.wait(ids, timeout=300)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/audit.py").run()
    assert not at.get("toggle")  # on the shipped audit itself there is nothing to overlay
    at.radio(key="results_source.source").set_value("Run store (2 finished runs)").run()
    assert not at.exception and not at.error
    toggle = at.toggle(key="results_source.overlay")
    assert toggle.label == "Overlay the shipped default audit" and not toggle.value
    aggregate = "Majority vs minority · balanced split, plain finetune"
    drop = "random: relative accuracy drop per group · balanced split"
    assert not any("shipped audit" in t["name"] for t in _charts(at)[aggregate]["data"])

    at.toggle(key="results_source.overlay").set_value(True).run()
    assert not at.exception and not at.error
    charts = _charts(at)
    lines = [t for t in charts[aggregate]["data"] if t.get("mode") == "lines+markers"]
    own = {t["name"]: t for t in lines if "shipped" not in t["name"]}
    reference = {t["name"]: t for t in lines if "shipped" in t["name"]}
    assert set(own) == {"majority groups", "minority groups"}
    assert set(reference) == {"majority groups · shipped audit", "minority groups · shipped audit"}
    # the shipped series: its own six random budgets, dashed; the store's series keep their two points
    assert all(t["line"]["dash"] == "dash" and len(t["x"]) == 6 for t in reference.values())
    assert all(len(t["x"]) == 2 and t["line"].get("dash") is None for t in own.values())
    from fairlin_core.audits.results import SHIPPED_AUDIT, load_results
    shipped = load_results(SHIPPED_AUDIT).class_drop("balanced", "none")
    expected = shipped[(shipped["method"] == "random") & (shipped["group_class"] == "minority")]
    assert reference["minority groups · shipped audit"]["y"] == pytest.approx(
        expected.sort_values("budget_fraction")["drop_mean"].tolist())
    marks = [t for t in charts[drop]["data"] if t["type"] == "scatter"]
    assert len(marks) == 10 and sum(t.get("showlegend", True) for t in marks) == 1
    assert {t["name"] for t in marks} == {"shipped audit"} and all(set(t["x"]) == {"10%", "1%"} for t in marks)
    assert any("shipped default audit" in c.value for c in at.caption)
    at.toggle(key="results_source.overlay").set_value(False).run()
    assert not any(t["type"] == "scatter" for t in _charts(at)[drop]["data"])
