"""The diagnostic registry: one registered class is a diagnostic everywhere (names, API, CLI, the Linearize
form), registrations that would clash are refused, and the built-in diagnostics share what they measure."""

import json

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

import fairlin_core as fl
from fairlin_core.audits import DIAGNOSTICS, Diagnostic, parse_diagnostics, register_diagnostic, run_audit
from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.cli import main
from fairlin_core.data import load_dataset
from fairlin_core.errors import FairLinError
from fairlin_core.jobs import JobManager, collect_from_store, get_manager
from fairlin_core.metrics.accuracy import predict_logits
from conftest import APP, job_config
from test_audit_core import checkpoints  # noqa: F401  (the tiny digits checkpoints, a fixture)


class Disagreement(Diagnostic):
    """Per group: the share of samples on which the linearized model predicts another class than the base."""

    name = "toy"
    tables = json_tables = by_group = ("toy",)
    headline = ("disagreement",)
    offered = True
    results = {"toy": ("disagreement",)}  # kept in audit results, on the linearized model's rows

    def compute(self, audit, progress):
        differ = pd.Series(audit.predictions["base"] != audit.predictions["lin"])
        share = differ.groupby(audit.data.group.numpy()).mean()
        return {"toy": pd.DataFrame({"group": audit.group_names, "group_index": range(len(audit.group_names)),
                                     "n": torch.bincount(audit.data.group, minlength=len(audit.group_names)),
                                     "disagreement": share.reindex(range(len(audit.group_names))).to_numpy()})}


@pytest.fixture
def toy():
    register_diagnostic(Disagreement())
    yield "toy"
    del DIAGNOSTICS["toy"]


def expected_disagreement(checkpoints, split="test"):
    """The toy's numbers computed here, by group, from the two checkpoints on ``split``."""
    data = load_dataset("digits").splits[split]
    base, lin = (predict_logits(load_checkpoint(checkpoints[m]).model, data.x).argmax(1) for m in ("base", "lin"))
    return [float((base != lin)[data.group == g].float().mean()) for g in range(10)]


def test_a_registered_diagnostic_is_one_of_all(toy):
    assert parse_diagnostics("all") == ("accuracy", "grad", "hessian", "boundary", "bound", "attr", "density", "toy")
    assert parse_diagnostics("toy, accuracy") == ("accuracy", "toy")


def test_the_cli_offers_runs_and_writes_a_registered_diagnostic(toy, checkpoints, capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    assert "bound, attr, density, toy or all" in " ".join(capsys.readouterr().out.split())
    assert main(["audit", "--base", str(checkpoints["base"]), "--linearized", str(checkpoints["lin"]),
                 "--diagnostics", "toy", "--json", "--out", str(tmp_path / "tables")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result) == ["toy", "param_distance"]
    assert [row["disagreement"] for row in result["toy"]] == pytest.approx(expected_disagreement(checkpoints))
    assert {p.name for p in (tmp_path / "tables").iterdir()} == {"summary.csv", "toy.csv"}
    assert main(["audit", "--base", str(checkpoints["base"]), "--linearized", str(checkpoints["lin"]),
                 "--diagnostics", "toy"]) == 0
    assert "disagreement" in capsys.readouterr().out  # the text output prints its headline column


def test_the_api_returns_a_registered_diagnostics_tables(toy, checkpoints):
    audit = fl.audit(load_checkpoint(checkpoints["base"]), load_checkpoint(checkpoints["lin"]),
                     diagnostics=["accuracy", "toy"], split="val")
    assert audit.diagnostics == ("accuracy", "toy")
    assert list(audit.by_group["disagreement"]) == pytest.approx(expected_disagreement(checkpoints, "val"))
    assert {"accuracy_base", "relative_drop"} <= set(audit.by_group.columns)
    result = run_audit(checkpoints["base"], checkpoints["lin"], diagnostics="toy")
    assert list(result) == ["param_distance", "summary", "toy"]


def test_the_linearize_form_offers_a_registered_diagnostic(toy, monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRLIN_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "store"))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page("pages/linearize.py").run()
    try:
        assert not app.exception
        offered, = [m for m in app.multiselect if m.label.startswith("Diagnostics")]
        assert offered.options == ["accuracy", "grad", "hessian", "boundary", "bound", "attr", "toy"]
        assert offered.value == ["grad", "hessian", "boundary", "bound"]  # toy is not preselected
    finally:
        get_manager(tmp_path / "store").shutdown()


def test_a_registration_that_would_clash_is_refused_whole():
    class Clash(Disagreement):
        name, needs, tables, json_tables, by_group, results = "clash", ("later",), ("summary", "grad_norms"), ("x",), (), {}

    with pytest.raises(FairLinError) as error:
        register_diagnostic(Clash())
    assert str(error.value) == ("cannot register diagnostic 'clash': need 'later' is not registered; table 'summary' "
                                "is already in every audit; table 'grad_norms' is already added by grad; json_tables "
                                "table 'x' is not among its tables")
    assert "clash" not in DIAGNOSTICS
    kept = type("Kept", (Disagreement,), {"name": "kept", "results": {"toy": ("loss",), "other": ("x",)}})
    with pytest.raises(FairLinError) as error:
        register_diagnostic(kept())
    assert str(error.value) == ("cannot register diagnostic 'kept': results table 'other' is not among its by_group "
                                "tables; results column 'loss' is already kept for grad")
    with pytest.raises(FairLinError, match="a diagnostic named 'all' is already registered"):
        register_diagnostic(type("All", (Disagreement,), {"name": "all"})())  # "all" means every one


def test_bound_alone_measures_what_grad_and_hessian_would_have_shared(checkpoints):
    alone = run_audit(checkpoints["base"], checkpoints["lin"], diagnostics="bound", split="val")
    shared = run_audit(checkpoints["base"], checkpoints["lin"], diagnostics="grad,hessian,bound", split="val")
    pd.testing.assert_frame_equal(alone["bound"], shared["bound"])
    assert list(shared["bound"]["grad_norm"]) == list(shared["grad_norms"]["grad_norm_base"])
    assert list(shared["bound"]["lambda_max"]) == list(shared["hessian"]["top_eigenvalue_base"])
    assert list(alone) == ["param_distance", "summary", "bound"]


def test_audit_results_keep_a_registered_diagnostics_values(toy, checkpoints, tmp_path):
    """A run whose recipe asks for the toy: its values reach the results' diagnostics table and the per-budget view
    (the Why page's table and the downloads), read back from the run store."""
    manager = JobManager(tmp_path / "store", workers=1)
    try:
        run_id = manager.submit(job_config(str(checkpoints["base"]), "random", 0.5, finetune={"epochs": 0},
                                           diagnostics=["toy"]))
        assert manager.wait([run_id], timeout=300)
        stored = manager.store.get_run(run_id).tables["audit:toy"]
        results = collect_from_store(manager.store, checkpoints["base"])
    finally:
        manager.shutdown()
    lin = results.diagnostics[results.diagnostics["model"] == "lin"].set_index("group")
    assert list(lin.loc[stored["group"].astype(str), "disagreement"]) == pytest.approx(list(stored["disagreement"]))
    assert results.diagnostics[results.diagnostics["model"] == "base"]["disagreement"].isna().all()
    by_budget = results.diagnostics_by_budget("random", "none")
    assert "disagreement" in by_budget and by_budget["disagreement"].notna().any()
