"""Fairness audit and Why (diagnostics) pages through AppTest, on the shipped default audit (what a fresh
install opens on) and on an empty run store."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairlin_core.jobs import JobConfig, get_manager
from conftest import APP



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
    assert len(app.get("plotly_chart")) == 8
    assert app.select_slider(key="audit_budget").options == ["20%", "10%", "5%", "2%", "1%", "0.5%"]
    table = app.dataframe[0].value
    assert list(table["group"]) == [str(d) for d in range(10)] and (table["n_seeds"] == 3).all()
    assert any("deepreduce at 1%" in c.value for c in app.caption)  # skipped budgets are explained


def test_audit_budget_method_and_mitigation_change_what_is_shown(app):
    app.switch_page("pages/audit.py").run()
    app.select_slider(key="audit_budget").set_value("0.5%").run()
    assert any(t.startswith("snl at 0.5% (38 ReLUs)") for t in _titles(app))
    at_half = app.dataframe[0].value
    app.select_slider(key="audit_budget").set_value("20%").run()
    assert any(t.startswith("snl at 20% (1,536 ReLUs)") for t in _titles(app))
    assert not app.dataframe[0].value.equals(at_half)

    app.selectbox(key="audit_method").set_value("deepreduce").run()
    assert app.select_slider(key="audit_budget").options == ["20%", "10%", "5%", "2%"]
    assert "deepreduce: relative accuracy drop per group" in _titles(app)

    before = app.dataframe[0].value
    app.radio(key="audit_mitigation").set_value("on").run()
    assert not app.dataframe[0].value.equals(before)
    app.selectbox(key="audit_split").set_value("balanced").run()
    assert not app.exception and not app.error


def _cost_chart(app) -> dict:
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return next(c for c in charts if c["layout"]["title"]["text"].startswith("Accuracy vs estimated online latency"))


def _front_table(app):
    return next(d.value for d in app.dataframe if "front_worst" in d.value.columns)


def test_audit_page_shows_accuracy_vs_estimated_latency_with_the_front(app):
    app.switch_page("pages/audit.py").run()
    assert app.selectbox(key="audit_profile").options == ["delphi", "delphi-client-garbler"]
    chart = _cost_chart(app)
    assert chart["layout"]["title"]["text"].startswith("Accuracy vs estimated online latency (delphi)")
    names = {trace["name"] for trace in chart["data"]}
    assert {"base model", "Pareto front", "snl, mitigation on", "deepreduce, mitigation off"} <= names
    fronts = [t for t in chart["data"] if t["name"] == "Pareto front"]
    assert len(fronts) == 2 and all(len(t["x"]) >= 2 for t in fronts)  # worst group and minority panels
    table = _front_table(app)
    assert (table["front_worst"] | table["front_minority"]).all() and "base" in set(table["method"])
    delphi_latency = table["online_latency_s"].tolist()
    app.selectbox(key="audit_profile").set_value("delphi-client-garbler").run()
    assert not app.exception and not app.error
    assert "(delphi-client-garbler)" in _cost_chart(app)["layout"]["title"]["text"]
    assert _front_table(app)["online_latency_s"].tolist() != delphi_latency


def test_audit_page_offers_downloads_and_a_standalone_report(app):
    app.switch_page("pages/audit.py").run()
    labels = [b.proto.label for b in app.get("download_button")]
    assert {"Download this table (CSV)", "Download the summary (CSV)", "Download the run's config (JSON)",
            "Download every table (CSV)"} <= set(labels)
    app.button(key="build_report").click().run()
    assert "Download the HTML report" in [b.proto.label for b in app.get("download_button")]
    assert not app.exception


def test_why_page_shows_the_diagnostics_across_budgets(app):
    app.switch_page("pages/why.py").run()
    assert not app.exception and not app.error
    titles = _titles(app)
    assert {"Group gradient norm ||g_a|| (Figure 3)", "Top Hessian eigenvalue per group (Figure 4)",
            "Boundary distance vs accuracy (Figure 8)"} <= set(titles)
    assert any(t.startswith("Hessian eigenvalue density per group") for t in titles)
    assert any(t.startswith("Mean |attribution| of group 9") for t in titles)
    app.select_slider(key="why_budget").set_value("0.5%").run()
    assert "Theorem 4.4 at 0.5%: bound vs measured excess loss" in _titles(app)
    app.selectbox(key="why_method").set_value("random").run()
    assert "Theorem 4.4 at 0.5%: bound vs measured excess loss" in _titles(app)
    app.radio(key="why_mitigation").set_value("on").run()
    assert not any(t.startswith("Hessian eigenvalue density") for t in _titles(app))  # detail: unmitigated only
    assert not app.exception


def test_another_dataset_without_runs_explains_what_to_do(app):
    # a sidebar choice is simulated by a fresh app whose session already holds it (see test_pages_dashboard)
    toy = AppTest.from_file(APP, default_timeout=120)
    toy.session_state["dataset"] = "toy2d"
    toy.run()
    for page in ("pages/audit.py", "pages/why.py"):
        toy.switch_page(page).run()
        assert not toy.exception
        assert "No finished runs of toy2d_mlp grouped by class yet" in toy.info[0].value


def test_run_store_results_offer_to_queue_the_missing_cells(app, tmp_path):
    toy = str(Path(APP).parent / "checkpoints" / "toy2d_mlp.safetensors")
    manager = get_manager(tmp_path / "store")
    ids = [manager.submit(JobConfig(toy, "random", budget, seed=seed, finetune={"epochs": 1}))
           for budget, seed in ((16, 0), (16, 1), (8, 0))]  # (8, 1) is the hole of this 2 x 2 grid
    assert manager.wait(ids, timeout=120)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["dataset"] = "toy2d"
    at.run()
    at.switch_page("pages/audit.py").run()
    assert not at.exception and not at.error
    assert "3 runs of toy2d_mlp.safetensors on toy2d grouped by class" in at.caption[0].value
    assert at.select_slider(key="audit_budget").options == ["50%", "25%"]
    assert "1 run of this grid is missing." in at.warning[0].value
    at.button(key="queue_missing").click().run()
    assert "Queued 1 run(s)" in at.success[0].value
