"""CLI contract: JSON shapes, exit codes and one-line errors, on the embedded datasets."""

import json
import subprocess
import sys

import pytest

from conftest import DIGITS, TOY, run_cli
from fairlin_core.cli.common import parse_option


def test_relu_count_resnet18_through_the_real_entry_point():
    proc = subprocess.run([sys.executable, "-m", "fairlin_core", "relu-count", "--model", "resnet18",
                           "--input-size", "32", "--json"], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert result["relu_count"] == 491_520
    assert sum(site["relu_count"] for site in result["per_site"]) == 491_520
    assert len(result["per_site"]) == 16


def test_relu_count_deepreduce_options(capsys):
    code, out, _ = run_cli(capsys, "relu-count", "--model", "resnet18", "--input-size", "32", "--cull", "1,2",
                           "--thin", "--stem-stride", "2", "--json")
    assert code == 0 and json.loads(out)["relu_count"] == 12_288


def test_usage_errors_are_one_line_with_exit_code_2():
    proc = subprocess.run([sys.executable, "-m", "fairlin_core", "relu-count", "--model", "resnet50",
                           "--input-size", "32"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown model 'resnet50'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "fairlin_core", "relu-count", "--model", "resnet18",
                           "--input-size", "abc"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "invalid int value" in proc.stderr


@pytest.mark.parametrize("argv,message", [
    (["relu-count", "--model", "resnet18", "--input-size", "32", "--cull", "one"], "comma-separated integers"),
    (["relu-count", "--model", "mlp", "--input-size", "2", "--cull", "1"], "ResNets"),
    (["relu-count", "--model", "resnet18", "--input-size", "0"], "positive integer"),
    (["relu-count", "--width", "8"], "give --checkpoint, or --model and --input-size"),
    (["dataset-info", "imagenet"], "unknown dataset"),
    (["dataset-info", "cifar10", "--data-root", "/nonexistent"], "cifar-10-batches-py"),
    (["dataset-info", "digits", "--dataset-option", "minor_fraction=1.5"], "minor_fraction"),
    (["dataset-info", "digits", "--dataset-option", "nonsense"], "key=value"),
    (["evaluate", "--checkpoint", "/nonexistent/model.safetensors"], "not found"),
    (["train-base", "--dataset", "toy2d", "--model", "resnet18", "--out", "x.safetensors"], "image input"),
])
def test_bad_input_gives_specific_errors(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_datasets_lists_embedded_ones_as_available(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "datasets", "--data-root", str(tmp_path), "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["digits"]["available"] and rows["toy2d"]["available"]
    assert not rows["cifar10"]["available"] and "cifar-10-batches-py" in rows["cifar10"]["reason"]
    assert set(rows) == {"digits", "toy2d", "cifar10", "svhn", "utkface", "folder"}


def test_dataset_info_digits_shape(capsys):
    code, out, _ = run_cli(capsys, "dataset-info", "digits", "--json")
    info = json.loads(out)
    assert code == 0 and info["name"] == "digits"
    assert info["group_names"] == [str(d) for d in range(10)]
    assert set(info["splits"]) == {"train", "val", "test", "balanced"}
    test = info["splits"]["test"]
    assert all(test[str(d)] > 40 for d in range(5)) and all(test[str(d)] <= 12 for d in range(5, 10))
    assert info["skipped"] == 0


def test_train_base_then_evaluate_round_trip(capsys, tmp_path):
    out_path = tmp_path / "toy.safetensors"
    code, out, _ = run_cli(capsys, "train-base", "--dataset", "toy2d", "--model", "mlp", "--epochs", "300",
                           "--seed", "1", "--out", str(out_path), "--json")
    trained = json.loads(out)
    assert code == 0 and out_path.exists() and out_path.with_suffix(".json").exists()
    assert trained["overall_accuracy"] > 0.85
    sidecar = json.loads(out_path.with_suffix(".json").read_text())
    assert sidecar["seed"] == 1 and sidecar["relu_count"] == 32 and sidecar["dataset"]["name"] == "toy2d"
    assert {"torch", "fairlin"} <= set(sidecar["versions"])
    code, out, _ = run_cli(capsys, "evaluate", "--checkpoint", str(out_path), "--json")
    evaluated = json.loads(out)
    assert code == 0
    assert evaluated["overall_accuracy"] == pytest.approx(trained["overall_accuracy"])
    assert [g["group"] for g in evaluated["groups"]] == ["majority", "minority"]
    assert sum(g["n"] for g in evaluated["groups"]) == 400
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(out_path), "--split", "balanced")
    assert code == 2 and "no split 'balanced'" in err


def test_import_checkpoint_and_audit_import_on_the_fly(capsys, tmp_path, monkeypatch):
    import torch
    from fairlin_core.checkpoints import load_checkpoint
    base = load_checkpoint(DIGITS)
    plain = {k: v for k, v in base.model.state_dict().items() if not k.endswith(".alpha")}
    torch.save({"state_dict": {"module." + k: v for k, v in plain.items()}}, tmp_path / "base.pth.tar")
    code, out, err = run_cli(capsys, "import-checkpoint", str(tmp_path / "base.pth.tar"), "--format", "state-dict",
                             "--arch", "resnet18", "--dataset", "digits", "--out", str(tmp_path / "imp"), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["kind"] == "base" and result["relu_count"] == 7680 and result["sites"] == 16
    assert result["imported_from"]["stripped_prefix"] == "module."
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "store"))
    code, out, err = run_cli(capsys, "audit", "--base", str(tmp_path / "base.pth.tar"), "--linearized",
                             str(tmp_path / "base.pth.tar"), "--format", "state-dict", "--arch", "resnet18",
                             "--dataset", "digits", "--json")
    assert code == 0, err
    assert len(list((tmp_path / "store" / "user_checkpoints").glob("base-*.safetensors"))) == 1
    code, out, err = run_cli(capsys, "import-checkpoint", str(tmp_path / "base.pth.tar"), "--format", "torchvision",
                             "--arch", "resnet18", "--dataset", "digits", "--out", str(tmp_path / "bad"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a torchvision checkpoint" in err


DEEP = "[" * 100_000


@pytest.mark.parametrize("argv, message", [
    (["dataset-info", "toy2d", "--dataset-option", f"n={DEEP}"],
     "the value of dataset option 'n' is nested 100,000 levels deep; expected at most 64"),
    (["import-checkpoint", TOY, "--format", "state-dict", "--model-code", "m:f", "--model-kwargs", DEEP,
      "--dataset", "toy2d"], "--model-kwargs is nested 100,000 levels deep"),
    (["import-checkpoint", TOY, "--format", "state-dict", "--model-code", "m:f", "--model-kwargs",
      '{"a": ' + "1" * 5000 + "}", "--dataset", "toy2d"], "--model-kwargs is not valid JSON (a number with too many"),
], ids=["dataset-option-deep", "model-kwargs-deep", "model-kwargs-5000-digits"])
def test_json_flags_beyond_the_bounds_are_one_error(capsys, tmp_path, argv, message):
    """--dataset-option values and --model-kwargs go through the bounded JSON parser (a RecursionError before)."""
    out = ["--out", tmp_path / "m.safetensors"] if argv[0] == "import-checkpoint" else []
    code, _, err = run_cli(capsys, *argv, *out)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err[:500]


def test_dataset_option_values_are_json_or_text():
    assert [parse_option(o) for o in ("n=5", "shape=moons", "mean=[0.5, 0.5]", "x=[[[", "y={")] == \
        [("n", 5), ("shape", "moons"), ("mean", [0.5, 0.5]), ("x", "[[["), ("y", "{")]
