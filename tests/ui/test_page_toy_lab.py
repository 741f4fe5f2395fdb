"""Toy lab page through Streamlit's AppTest (real script runs, real background training)."""


import pytest
from streamlit.testing.v1 import AppTest

from fairlin_core import toy
from conftest import REPO

PAGE = str(REPO / "pages" / "toy_lab.py")


@pytest.fixture
def prewarms(monkeypatch):
    """Record the page's prewarm calls instead of starting idle worker processes (CPU the suite needs)."""
    calls = []
    monkeypatch.setattr(toy, "prewarm", lambda: calls.append(True))
    return calls


@pytest.fixture
def page(prewarms):
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception
    return app


def finish(app):
    """Wait for the background job, then rerun the page as the polling fragment would."""
    app.session_state["toy_lab.job"].join(60)
    app.run()
    assert not app.exception


def test_controls_and_the_appendix_b1_panel_render(page, prewarms):
    assert prewarms  # a worker process is readied before the first Train click
    assert page.selectbox(key="toy_lab.shape").value == "paper"
    assert page.slider(key="toy_lab.linearized").value == 0.5
    assert page.radio(key="toy_lab.mode").value == "scratch" and page.radio(key="toy_lab.which").value == "random"
    assert {b.key for b in page.button} >= {"toy_lab.train", "toy_lab.disk"}
    assert len(page.get("plotly_chart")) == 2  # the B.1 pictures; no boundaries before training
    page.radio(key="toy_lab.b1_unit").set_value("both").run()
    assert not page.exception and len(page.get("plotly_chart")) == 2


def test_small_train_shows_boundaries_accuracy_and_region_counts(page):
    page.slider(key="toy_lab.n").set_value(300)
    page.slider(key="toy_lab.steps").set_value(100)
    page.slider(key="toy_lab.seeds").set_value(2)
    page.button(key="toy_lab.train").click().run()
    assert not page.exception and not page.error
    finish(page)
    assert not page.error
    assert len(page.get("plotly_chart")) == 2 + 4  # B.1 + two boundaries, accuracy bars, loss curve
    labels = [m.label for m in page.metric]
    assert "linear regions crossed on the diagonal" in labels and "activation patterns on a 200x200 grid" in labels
    page.selectbox(key="toy_lab.view_seed").set_value(1).run()
    page.radio(key="toy_lab.split").set_value("train").run()
    assert not page.exception and len(page.get("plotly_chart")) == 6


def test_training_is_live_and_can_be_stopped(page):
    page.slider(key="toy_lab.seeds").set_value(10)
    page.button(key="toy_lab.train").click().run()
    assert not page.exception
    assert len(page.get("progress")) == 1  # the polling fragment is drawing progress
    page.button(key="toy_lab.stop").click().run()
    finish(page)
    assert "stopped" in page.warning[0].value


def test_bad_input_is_a_readable_message(page):
    page.radio(key="toy_lab.mode").set_value("snl")
    page.slider(key="toy_lab.linearized").set_value(1.0)
    page.button(key="toy_lab.train").click().run()
    assert not page.exception
    assert "at least one ReLU" in page.error[0].value


def test_disk_counter_example_button_switches_the_shape(page):
    page.button(key="toy_lab.disk").click().run()
    assert not page.exception and page.selectbox(key="toy_lab.shape").value == "disk"


def test_results_go_stale_visibly_when_a_control_changes(page):
    page.slider(key="toy_lab.n").set_value(300)
    page.slider(key="toy_lab.steps").set_value(100)
    page.slider(key="toy_lab.seeds").set_value(1)
    page.button(key="toy_lab.train").click().run()
    finish(page)
    assert not [w for w in page.warning if "Out of date" in w.value]
    page.slider(key="toy_lab.linearized").set_value(0.75).run()
    stale = [w.value for w in page.warning if "Out of date" in w.value]
    assert len(stale) == 1 and "linearized" in stale[0]
    assert len(page.get("plotly_chart")) == 2 + 4  # the old results stay visible under the warning


def test_sweep_tab_trains_every_share_and_draws_the_curves(page):
    page.slider(key="toy_lab.n").set_value(200)
    page.slider(key="toy_lab.steps").set_value(40)
    page.slider(key="toy_lab.seeds").set_value(1)
    page.multiselect(key="toy_lab.sweep_shares").set_value([0.3, 0.6]).run()
    page.button(key="toy_lab.sweep_run").click().run()
    assert not page.exception and not page.error
    page.session_state["toy_lab.sweep_job"].join(120)
    page.run()
    assert not page.exception and not page.error
    assert len(page.get("plotly_chart")) == 2 + 1  # B.1 pictures + the sweep curves
    assert page.session_state["toy_lab.sweep_job"].snapshot()["result"].shares == [0.0, 0.3, 0.6]
    assert len(page.dataframe) == 1
