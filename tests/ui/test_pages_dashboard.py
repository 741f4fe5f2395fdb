"""Dashboard pages Models & data and Linearize, the sidebar and the jobs panel, through AppTest and
their view models in fairlin_core.dashboard (real engine calls, tiny jobs)."""

import dataclasses
import json
import pickle
import time
from pathlib import Path

from datetime import datetime, timedelta, timezone

import pytest
import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from ui import checkpoint_views, jobs_view, linearize_form
from ui.state import CHOICE_KEY, Choice
from fairlin_core.checkpoints import upload
from fairlin_core.errors import FairLinError
from fairlin_core.finetune import MitigationConfig
from fairlin_core.limits import RUN_LIMITS
from fairlin_core.jobs import JobManager, get_manager, user_checkpoint_dir
from fairlin_core.linearizers import LinearizeRecipe
from conftest import APP, DIGITS, TOY



@pytest.fixture
def store(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRLIN_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "store"))
    yield tmp_path / "store"
    get_manager(tmp_path / "store").shutdown()


@pytest.fixture
def app(store):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def _texts(at) -> str:
    parts = [e.value for kind in ("markdown", "info", "success", "error", "caption", "title") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page,title", [("pages/models_data.py", "Models & data"), ("pages/linearize.py", "Linearize"),
                                        ("pages/home.py", "FairLin")])
def test_every_page_renders_on_the_embedded_defaults(app, page, title):
    app.switch_page(page).run()
    assert not app.exception
    assert not app.error
    assert app.title[0].value == title


def test_models_page_shows_checkpoints_group_sizes_and_forms(app):
    app.switch_page("pages/models_data.py").run()
    table = app.dataframe[0].value
    assert {"digits_resnet18", "toy2d_mlp"} <= set(table["checkpoint"])
    assert {"source", "model", "dataset", "relu_count"} <= set(table.columns)
    assert len(app.get("plotly_chart")) == 2  # per-group accuracy + group sizes
    assert "Group sizes: digits by digit" in [h.value for h in app.header]


def test_models_page_charts_follow_the_audit_pages_group_colours_and_legends(app):
    import json
    from fairlin_core.viz.audit_figures import MAJORITY_COLORS, MINORITY_COLORS
    app.switch_page("pages/models_data.py").run()
    charts = {c.key: json.loads(c.proto.spec) for c in app.get("plotly_chart")}
    accuracy, sizes = charts["models_data.group_accuracy"], charts["models_data.group_sizes"]
    assert accuracy["layout"]["title"]["text"] == "digits: accuracy per group and checkpoint · balanced split"
    for chart in (accuracy, sizes):
        legend = chart["layout"]["legend"]
        assert legend["orientation"] == "h" and legend["y"] < 0 and legend["maxheight"] == 1
        colors = {t["name"].split(" ")[0]: t["marker"]["color"] for t in chart["data"]}
        assert all(colors[str(g)] in MAJORITY_COLORS for g in range(5))
        assert all(colors[str(g)] in MINORITY_COLORS for g in range(5, 10))
        assert "minority, train n=" in next(t["name"] for t in chart["data"] if t["name"].startswith("9 "))
    bars = accuracy["data"]
    assert bars[0]["x"] == ["digits_resnet18"] and "%{y:.1f}%" in bars[0]["hovertemplate"]
    assert sizes["data"][0]["x"] == ["train", "val", "test", "balanced"]


def test_method_and_budget_change_what_is_shown(app):
    app.switch_page("pages/linearize.py").run()
    assert "SNL learns masks down to 768 of 7,680" in app.info[0].value
    app.radio(key="linearize.method").set_value("deepreduce").run()
    assert "DeepReDuce configuration: stages 1,2 culled + thinned" in app.info[0].value
    slider = app.select_slider(key="linearize.budget_pct")
    assert slider.options[0] == "100%" and slider.options[-1] == "0.1%"  # fewer ReLUs to the right, log stops
    app.select_slider(key="linearize.budget_pct").set_value(50.0).run()
    assert app.number_input(key="linearize.budget_count").value == 3840
    app.number_input(key="linearize.budget_count").set_value(3072).run()
    assert app.select_slider(key="linearize.budget_pct").value == 50.0  # the log stop nearest to 40%
    assert "stages 1,4 culled" in app.info[0].value
    app.number_input(key="linearize.budget_count").set_value(7680).run()
    assert app.select_slider(key="linearize.budget_pct").value == 100.0
    assert "no stage culled" in app.info[0].value
    assert not app.exception


def test_budget_presets_set_the_budget_and_zero_finetune_epochs_warn(app):
    app.switch_page("pages/linearize.py").run()
    assert not app.warning
    app.get("button_group")[0].set_value(0.5).run()
    assert app.number_input(key="linearize.budget_count").value == 38
    assert app.select_slider(key="linearize.budget_pct").value == 0.5
    app.number_input(key="linearize.finetune_epochs").set_value(0).run()
    assert "Finetune epochs is 0" in app.warning[0].value
    assert app.multiselect(key="linearize.diagnostics").options == ["accuracy", "grad", "hessian", "boundary", "bound",
                                                                   "attr"]
    assert app.multiselect(key="linearize.diagnostics").value == ["grad", "hessian", "boundary", "bound"]


def test_linearize_form_state_survives_a_reload(app):
    app.switch_page("pages/linearize.py").run()
    app.radio(key="linearize.method").set_value("random").run()
    app.number_input(key="linearize.budget_count").set_value(154).run()
    app.number_input(key="linearize.finetune_epochs").set_value(3).run()
    app.multiselect(key="linearize.diagnostics").set_value(["accuracy", "attr"]).run()
    params = dict(app.query_params)
    assert params["method"] == "random" and params["budget_count"] == "154"
    # a reload: a fresh session opening the page with the same address
    fresh = AppTest.from_file(APP, default_timeout=60)
    fresh.run()
    for key, value in params.items():
        fresh.query_params[key] = value
    fresh.switch_page("pages/linearize.py").run()
    assert not fresh.exception
    assert fresh.radio(key="linearize.method").value == "random"
    assert fresh.number_input(key="linearize.budget_count").value == 154
    assert fresh.number_input(key="linearize.finetune_epochs").value == 3
    assert fresh.multiselect(key="linearize.diagnostics").value == ["accuracy", "attr"]
    assert fresh.select_slider(key="linearize.budget_pct").value == 2.0


def test_sidebar_offers_global_choices_that_pages_follow(app, store):
    assert app.selectbox(key="sidebar.dataset").value == "digits"
    assert app.selectbox(key="sidebar.group_attribute").value == "digit"
    assert app.selectbox(key="sidebar.base_checkpoint").value == "digits_resnet18"
    # AppTest re-runs only the page script after the first run under st.navigation, so a sidebar choice
    # is simulated by a fresh app whose session already holds it
    toy = AppTest.from_file(APP, default_timeout=60)
    toy.session_state["sidebar.dataset"] = "toy2d"
    toy.run()
    assert toy.selectbox(key="sidebar.base_checkpoint").value == "toy2d_mlp"
    assert toy.selectbox(key="sidebar.group_attribute").value == "class"
    toy.switch_page("pages/linearize.py").run()
    assert "of 32 ReLUs" in toy.info[0].value  # the toy MLP is the base now
    toy.switch_page("pages/models_data.py").run()
    assert "Group sizes: toy2d by class" in [h.value for h in toy.header]
    toy.switch_page("pages/linearize.py").run()
    assert "of 32 ReLUs" in toy.info[0].value  # still the toy choice after two page changes


def test_pages_read_the_sidebar_choice_as_one_typed_object(store):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["sidebar.dataset"] = "toy2d"
    at.run()
    choice = at.session_state[CHOICE_KEY]
    assert isinstance(choice, Choice) and dataclasses.is_dataclass(choice)
    assert (choice.dataset, choice.group, choice.checkpoint, choice.data_root) == ("toy2d", "class", "toy2d_mlp",
                                                                                   None)
    assert Path(choice.checkpoint_path) == Path(TOY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.dataset = "digits"


def test_submitted_tiny_job_appears_in_the_jobs_panel_and_finishes(app, store):
    app.switch_page("pages/linearize.py").run()
    app.select_slider(key="linearize.budget_pct").set_value(20.0).run()
    app.number_input(key="linearize.snl_epochs").set_value(1).run()
    app.number_input(key="linearize.finetune_epochs").set_value(0).run()
    app.multiselect(key="linearize.diagnostics").set_value(["accuracy"]).run()
    app.button(key="linearize.submit").click().run()
    assert not app.exception
    assert "Submitted 1 job(s)" in app.success[0].value
    manager = get_manager(store)
    ids = [job.id for job in manager.jobs()]
    assert len(ids) == 1
    assert manager.wait(ids, timeout=120)
    app.run()
    text = _texts(app)
    assert f"`{ids[0]}` · done" in text
    assert "digits_resnet18 · snl · 1536 ReLUs · seed 0" in text
    run = manager.store.list_runs()[0]
    assert f"Test accuracy **{run['overall_accuracy']:.1%}** overall, worst group **{run['worst_group_accuracy']:.1%}**" in text
    links = [e.proto for e in app.get("page_link")]
    assert any(link.label == "Open the audit on this run" and f"run={ids[0]}" in link.query_string
               for link in links)
    assert run["config"]["diagnostics"] == ["accuracy"]
    assert not app.exception
    # a fresh session (a browser reload) still lists it: the state lives in the manager and the store
    fresh = AppTest.from_file(APP, default_timeout=60)
    fresh.run()
    fresh.switch_page("pages/linearize.py").run()
    assert f"`{ids[0]}` · done" in _texts(fresh)


def test_eta_extrapolates_the_pace_so_far():
    started = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert jobs_view.eta_seconds(started.isoformat(), 0.25, started + timedelta(seconds=30)) == pytest.approx(90.0)
    assert jobs_view.eta_seconds(None, 0.5) is None and jobs_view.eta_seconds(started.isoformat(), 0.0) is None


def test_the_jobs_panel_polls_only_while_a_job_is_active(monkeypatch):
    from ui import jobs_panel
    live, drawn, rows = [], [], [[{"active": False}, {"active": False}]]
    monkeypatch.setattr(jobs_panel, "_rows", lambda limit, kind=None: rows[0][:limit])
    monkeypatch.setattr(jobs_panel, "_live", lambda name, *args: live.append((name, *args)))
    draw = jobs_panel._draw_jobs
    monkeypatch.setattr(jobs_panel, "_draw_jobs", lambda rows, *args: drawn.append((len(rows), *args)))
    jobs_panel._polled(jobs_panel._draw_jobs, 20, None)
    assert drawn == [(2,)] and live == []  # idle: drawn once, no fragment that reruns every second
    rows[0] = [{"active": False}, {"active": True}]
    jobs_panel._polled(draw, 20, None)
    jobs_panel._polled(jobs_panel._draw_compact, 50, None, 4)
    assert live == [("_draw_jobs", 20, None), ("_draw_compact", 50, None, 4)]


def test_jobs_overview_lists_runs_of_the_store_with_readable_failures(store):
    manager = get_manager(store)
    recipes = linearize_form.form_recipes("random", 0.5, [0, 1], snl_epochs=1, finetune_epochs=0,
                                          mitigations=linearize_form.form_mitigations("both"))
    configs = linearize_form.recipe_job_configs(DIGITS, recipes)
    assert len(configs) == 4
    assert [c.recipe.mitigation_name for c in configs] == ["none", "lagrangian"] * 2
    run_id = manager.submit(configs[0])
    manager.cancel(run_id)
    assert manager.wait([run_id], timeout=120)
    rows = jobs_view.jobs_overview(manager)
    assert rows[0]["id"] == run_id and rows[0]["status"] in ("cancelled", "done")
    assert jobs_view.readable_error("Traceback (most recent call last):\n  File x\nValueError: bad") == "ValueError: bad"


def test_job_configs_with_another_group_attribute_override_the_dataset():
    recipes = linearize_form.form_recipes("random", 16, [0], snl_epochs=1, finetune_epochs=0)
    config, = linearize_form.recipe_job_configs(TOY, recipes, group="class")
    assert config.dataset is None
    with pytest.raises(FairLinError, match="not an attribute"):
        linearize_form.recipe_job_configs(TOY, recipes, group="age")


def test_the_form_builds_recipes_and_the_job_configs_carry_them_unchanged(app):
    on = linearize_form.form_mitigations("on", "groupdro")
    assert on == [MitigationConfig(method="groupdro")]
    assert linearize_form.form_mitigations("both", "lagrangian", 0.05) == [None, MitigationConfig(mu=0.05)]
    recipes = linearize_form.form_recipes("random", 16, [0, 2], mitigations=on, snl_epochs=30, finetune_epochs=10,
                                          select="worst-group", diagnostics=["grad"])
    assert [(r.seed, r.mitigation_name, r.snl.epochs, r.finetune.epochs, r.finetune.select) for r in recipes] == [
        (0, "groupdro", 30, 10, "worst-group"), (2, "groupdro", 30, 10, "worst-group")]
    configs = linearize_form.recipe_job_configs(TOY, recipes)
    assert [c.recipe for c in configs] == recipes
    assert linearize_form.form_recipes("random", 16, [0])[0] == LinearizeRecipe(method="random", budget=16)
    app.switch_page("pages/linearize.py").run()  # the page starts from the form's recipe
    form = linearize_form.FORM_RECIPE
    assert app.number_input(key="linearize.snl_epochs").value == form.snl.epochs
    assert app.number_input(key="linearize.finetune_epochs").value == form.finetune.epochs
    assert app.number_input(key="linearize.mu").value == MitigationConfig().mu


def _toy_files(tmp_path):
    weights = Path(TOY).read_bytes()
    sidecar = Path(TOY).with_suffix(".json").read_bytes()
    return weights, sidecar


def test_valid_upload_is_stored_and_listed(tmp_path):
    weights, sidecar = _toy_files(tmp_path)
    dest = tmp_path / "user"
    path = upload.accept_upload("mine.safetensors", weights, sidecar, dest)
    assert path == dest / "mine.safetensors" and path.with_suffix(".json").exists()
    table = checkpoint_views.checkpoints_overview(dest)
    assert ("user", "mine") in set(zip(table["source"], table["checkpoint"]))
    assert "mine (user)" in checkpoint_views.checkpoint_choices(dest, "toy2d")
    with pytest.raises(FairLinError, match="already exists"):
        upload.accept_upload("mine.safetensors", weights, sidecar, dest)


@pytest.mark.parametrize("case,match", [
    ("pickle", "never unpickles"), ("shapes", "does not match the architecture"), ("sidecar", "not valid JSON"),
    ("name", "not a .safetensors file"), ("size", "upload limit"), ("traversal", "not a .safetensors")])
def test_invalid_uploads_are_refused_and_nothing_is_written(tmp_path, case, match):
    weights, sidecar = _toy_files(tmp_path)
    name = "bad.safetensors"
    if case == "pickle":
        weights = pickle.dumps({"weight": [1.0, 2.0]})
    elif case == "shapes":
        save_file({"layers.0.weight": torch.zeros(3, 3)}, str(tmp_path / "w.safetensors"))
        weights = (tmp_path / "w.safetensors").read_bytes()
    elif case == "sidecar":
        sidecar = b"{not json"
    elif case == "name":
        name = "bad.pt"
    elif case == "traversal":
        name = "../../evil.json"
    dest = tmp_path / "user"
    with pytest.raises(FairLinError, match=match) as refused:
        upload.accept_upload(name, weights, sidecar, dest, max_bytes=100 if case == "size" else 10**9)
    assert "/tmp/fairlin-upload" not in str(refused.value)
    assert not dest.exists() or not any(dest.iterdir())


def test_base_training_job_trains_saves_and_lists_a_user_checkpoint(tmp_path):
    manager = JobManager(tmp_path / "store", workers=1)
    user = user_checkpoint_dir(tmp_path / "store")
    try:
        job_id = checkpoint_views.submit_base_training(manager, "toy2d", "mlp", epochs=2, seed=0, name="toy_small")
        assert manager.wait([job_id], timeout=120) and manager.status(job_id).status == "done"
        row, = jobs_view.jobs_overview(manager, kind="train-base")
        assert row["label"] == "train mlp w16 on toy2d · seed 0" and row["checkpoint"] == str(user / "toy_small.safetensors")
        assert Path(row["checkpoint"]).exists()
        sidecar = json.loads(Path(row["checkpoint"]).with_suffix(".json").read_text())
        assert sidecar["kind"] == "base" and sidecar["relu_count"] > 0
        assert "toy_small (user)" in checkpoint_views.checkpoint_choices(user, "toy2d")
        with pytest.raises(FairLinError, match="already exists"):
            checkpoint_views.submit_base_training(manager, "toy2d", "mlp", epochs=1, name="toy_small")
        with pytest.raises(FairLinError, match="epochs"):
            checkpoint_views.submit_base_training(manager, "toy2d", "mlp", epochs=0, name="other")
    finally:
        manager.shutdown()


def test_models_page_queues_base_training_on_the_shared_manager_and_shows_it_done(store):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["sidebar.dataset"] = "toy2d"
    at.run()
    at.switch_page("pages/models_data.py").run()
    at.selectbox(key="models_data.train_model").set_value("mlp")
    at.number_input(key="models_data.train_epochs").set_value(2)
    at.text_input(key="models_data.train_name").set_value("page_toy")
    next(b for b in at.button if str(b.label).startswith("Train on")).click().run()
    assert not at.exception and not at.error
    manager = get_manager(store)
    job, = manager.jobs()
    assert job.config["kind"] == "train-base" and job.config["name"] == "page_toy"
    assert manager.wait([job.id], timeout=120) and manager.status(job.id).status == "done"
    at.switch_page("pages/models_data.py").run()
    assert not at.exception
    assert "train mlp w16 on toy2d · seed 0" in _texts(at)
    assert any("page_toy.safetensors" in s.value for s in at.success)
    assert "page_toy" in set(at.dataframe[0].value["checkpoint"])


def test_base_training_job_cancels_without_a_checkpoint(tmp_path):
    manager = JobManager(tmp_path / "store", workers=1)
    try:
        job_id = checkpoint_views.submit_base_training(manager, "toy2d", "mlp", epochs=RUN_LIMITS["epochs"],
                                                        name="never")  # the longest run allowed
        deadline = time.monotonic() + 60
        while manager.status(job_id).status != "running" or manager.status(job_id).fraction == 0.0:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)
        assert manager.cancel(job_id)
        assert manager.wait([job_id], timeout=60) and manager.status(job_id).status == "cancelled"
        assert not (user_checkpoint_dir(tmp_path / "store") / "never.safetensors").exists()
    finally:
        manager.shutdown()


def test_a_failed_run_shows_a_readable_reason_and_no_traceback(app, store):
    manager = get_manager(store)
    config, = linearize_form.recipe_job_configs(DIGITS, linearize_form.form_recipes("random", 100, [3], snl_epochs=1,
                                                                                    finetune_epochs=0))
    claim = manager.store.claim(config.canonical_hash(), config.to_dict())
    manager.store.mark_running(claim.id)
    manager.store.mark_failed(claim.id, "the data folder vanished; expected digits",
                              'Traceback (most recent call last):\n  File "x.py", line 1\nOSError: gone')
    app.switch_page("pages/linearize.py").run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert errors == ["Failed: the data folder vanished; expected digits"]
    assert "Traceback" not in _texts(app)


def test_linearize_page_runs_on_this_machine_by_default_and_on_ray_when_an_address_is_set(app, monkeypatch):
    from ui.jobs_panel import default_executor
    app.switch_page("pages/linearize.py").run()
    radio = next(r for r in app.radio if r.label == "Run on")
    assert radio.value == "local" and list(radio.options) == ["this machine (threads)", "Ray cluster"]
    assert not [t for t in app.text_input if t.label == "Ray address"]
    assert default_executor() == "local"
    monkeypatch.setenv("FAIRLIN_RAY_ADDRESS", "10.0.0.1:6379")
    assert default_executor() == "ray"
