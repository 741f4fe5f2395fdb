"""CLI `linearize`: JSON contract, written checkpoint usable by `evaluate`, and specific errors."""

import json

import pytest

from fairlin_core.cli import main
from conftest import DIGITS, TOY, run_cli

QUICK = ["--snl-epochs", "2", "--finetune-epochs", "1"]


def test_linearize_json_and_evaluate_on_the_output(capsys, tmp_path):
    out = tmp_path / "lin"
    code, stdout, _ = run_cli(capsys, "linearize", "--checkpoint", DIGITS, "--method", "snl", "--budget", "5%",
                              "--out", out, "--json", *QUICK)
    assert code == 0
    result = json.loads(stdout)
    assert {"method", "budget_requested", "relu_count", "base_relu_count", "overall_accuracy", "groups"} <= set(result)
    assert result["method"] == "snl" and result["budget_requested"] == "5%"
    assert result["relu_count"] == 384 and result["base_relu_count"] == 7680
    assert [g["group"] for g in result["groups"]] == [str(d) for d in range(10)]
    assert all({"group", "n", "accuracy", "base_accuracy"} <= set(g) for g in result["groups"])
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["kind"] == "linearized" and sidecar["relu_count"] == 384 and sidecar["history"]
    assert sidecar["evaluations_base"]["test"]["groups"][0]["accuracy"] == result["groups"][0]["base_accuracy"]
    code, stdout, _ = run_cli(capsys, "evaluate", "--checkpoint", out, "--json")
    evaluated = json.loads(stdout)
    assert code == 0 and evaluated["relu_count"] == 384
    assert evaluated["overall_accuracy"] == pytest.approx(result["overall_accuracy"])


def test_linearize_deepreduce_reports_its_configuration(capsys, tmp_path):
    code, stdout, _ = run_cli(capsys, "linearize", "--checkpoint", DIGITS, "--method", "deepreduce", "--budget",
                              "3500", "--out", tmp_path / "dr", "--json", *QUICK)
    result = json.loads(stdout)
    assert code == 0 and result["relu_count"] == 3584
    assert result["configuration"]["description"] == "stages 1 culled"


@pytest.mark.parametrize("argv,message", [
    (["--checkpoint", DIGITS, "--method", "snl", "--budget", "0"], "budget must be positive"),
    (["--checkpoint", DIGITS, "--method", "snl", "--budget", "-5"], "budget must be positive"),
    (["--checkpoint", DIGITS, "--method", "snl", "--budget", "9000"], "above the base model's 7680 ReLUs"),
    (["--checkpoint", DIGITS, "--method", "snl", "--budget", "ten"], "not a number"),
    (["--checkpoint", DIGITS, "--method", "snl", "--budget", "1.5"], "(0, 1]"),
    (["--checkpoint", TOY, "--method", "deepreduce", "--budget", "0.5"], "ResNets"),
    (["--checkpoint", DIGITS, "--method", "snl", "--budget", "0.1", "--dataset", "toy2d"], "expects input (1, 8, 8)"),
    (["--checkpoint", DIGITS, "--method", "snl", "--budget", "0.1", "--cull", "1"], "expected --method deepreduce"),
])  # --snl-epochs 0 is refused at parse time now (tests/cli/test_cli_bounds.py)
def test_bad_input_exits_2_with_a_specific_message(capsys, tmp_path, argv, message):
    code, _, err = run_cli(capsys, "linearize", *argv, "--out", tmp_path / "x")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_unknown_method_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["linearize", "--checkpoint", DIGITS, "--method", "magic", "--budget", "0.1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'magic'" in capsys.readouterr().err
