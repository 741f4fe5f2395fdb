"""The notebook API (``import fairlin_core as fl``): lazy, in memory, and the same numbers as the CLI's files."""

import json
import subprocess
import sys

import pandas as pd
import pytest

import fairlin_core as fl
from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.cli import main

TOY = SHIPPED_CHECKPOINTS / "toy2d_mlp.safetensors"


def _imports_torch(code: str) -> bool:
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1] == "True"


def test_import_and_cli_help_do_not_import_torch():
    assert not _imports_torch("import fairlin_core as fl; fl.__version__")
    assert not _imports_torch("from fairlin_core.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")


def test_console_script_and_module_print_the_same_help():
    module = subprocess.run([sys.executable, "-m", "fairlin_core", "--help"], capture_output=True, text=True, check=True)
    assert "linearize" in module.stdout and "default-audit" in module.stdout


def test_every_exported_name_resolves():
    for name in fl.__all__:
        assert getattr(fl, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        fl.nothing_here


@pytest.fixture(scope="module")
def toy_pair():
    base = fl.load_checkpoint(TOY)
    data = base.dataset()
    lin = fl.linearize(base, "random", 0.5, data=data, finetune_epochs=2, seed=0)
    return base, data, lin


def test_linearize_returns_an_in_memory_checkpoint(toy_pair, tmp_path):
    base, _, lin = toy_pair
    assert lin.path is None and lin.label == "linearized (in memory)"
    assert lin.relu_count == 16 and base.relu_count == 32
    assert lin.sidecar["method"] == "random" and lin.sidecar["base_checkpoint"] == str(base.path)
    saved = fl.load_checkpoint(lin.save(tmp_path / "lin.safetensors"))
    assert saved.relu_count == 16 and saved.sidecar["relu_count"] == 16


def test_audit_in_memory_equals_the_cli_on_saved_files(toy_pair, tmp_path, capsys):
    base, data, lin = toy_pair
    audit = fl.audit(base, lin, data=data, diagnostics=["accuracy", "grad"], seed=3)
    path = lin.save(tmp_path / "lin.safetensors")
    code = main(["audit", "--base", str(TOY), "--linearized", str(path), "--diagnostics", "accuracy,grad",
                 "--seed", "3", "--json"])
    cli = json.loads(capsys.readouterr().out)
    assert code == 0
    assert audit.to_json()["accuracy"] == cli["accuracy"]
    assert audit.to_json()["grad_norms"] == cli["grad_norms"]
    assert audit.param_distance == pytest.approx(cli["param_distance"])


def test_audit_tables_summary_and_save(toy_pair, tmp_path):
    base, data, lin = toy_pair
    audit = fl.audit(base, lin, data=data, diagnostics="accuracy,hessian")
    by_group = audit.by_group
    assert list(by_group["group"]) == list(data.group_names)
    assert {"accuracy_base", "accuracy_lin", "relative_drop", "top_eigenvalue_base", "top_eigenvalue_lin"} <= set(by_group)
    summary = audit.summary().set_index("model")
    drop = (summary.loc["base", "overall_accuracy"] - summary.loc["lin", "overall_accuracy"]) \
        / summary.loc["base", "overall_accuracy"] * 100
    assert summary.loc["lin", "overall_relative_drop"] == pytest.approx(drop)
    assert summary.loc["lin", "largest_group_drop"] == pytest.approx(by_group["relative_drop"].max())
    written = {p.name for p in audit.save(tmp_path / "out")}
    assert {"summary.csv", "accuracy.csv", "hessian.csv"} <= written
    assert pd.read_csv(tmp_path / "out" / "accuracy.csv")["relative_drop"].tolist() == pytest.approx(
        audit["accuracy"]["relative_drop"].tolist())


def test_audit_is_callable_whatever_was_imported_before(toy_pair):
    import fairlin_core.audits.grid  # noqa: F401  (the wing, named apart from the function)
    base, data, lin = toy_pair
    assert callable(fl.audit) and fl.audit(base, lin, data=data).split == "test"


def test_wrong_data_is_refused_before_any_work(toy_pair):
    base, _, _ = toy_pair
    with pytest.raises(fl.FairLinError, match="expects input"):
        fl.linearize(base, "random", 0.5, data=fl.load_dataset("digits"))
    with pytest.raises(fl.FairLinError, match="unknown diagnostic"):
        fl.audit(base, base, diagnostics="speed")
