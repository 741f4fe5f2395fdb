"""Run sizes, real-valued settings and echoes of user input: the limits of ``fairlin_core.limits`` hold in the CLI's
parsers and in the notebook API alike, every echo is cut to 80 characters, and torch's warnings add no stderr line."""

import itertools
import json
import math
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch

from conftest import REPO, TOY
from fairlin_core.cli import main
from fairlin_core.errors import ECHO_LIMIT, FairLinError
from fairlin_core.limits import POSITIVE, RUN_LIMITS, Interval, check_count, check_many, check_real

LONG = "y" * 100_000


def _refused(capsys, *argv):
    """(exit code, stderr) of ``fairlin ARGV`` run in process, argparse refusals included."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    assert captured.out == "", captured.out[:300]
    return code, captured.err


def _one_line(capsys, *argv) -> str:
    code, err = _refused(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err[:500]
    return err


# ------------------------------------------------------------------------------------------------ run sizes

LINEARIZE = ["linearize", "--checkpoint", TOY, "--method", "random", "--budget", "4"]
COMPARE = ["compare", "--checkpoint", TOY, "--method", "random", "--budgets", "4"]


@pytest.mark.parametrize("argv, expected", [
    ([*COMPARE, "--seeds", ",".join(map(str, range(10_000)))], "at most 1,000 seeds (--seeds) are allowed in one run, "
                                                               "got 10,000"),
    ([*COMPARE, "--budgets", ",".join(map(str, range(1, 202)))], "at most 100 budgets (--budgets)"),
    ([*COMPARE, "--finetune-epochs", str(10**12)], "--finetune-epochs: expected a non-negative integer at most 100,000"),
    ([*COMPARE, "--snl-epochs", "0"], "--snl-epochs: expected a positive integer at most 100,000, got '0'"),
    (["toy", "--seeds", "1000000000"], "--seeds: expected a positive integer at most 1,000"),
    (["toy", "--steps", str(10**12)], "--steps: expected a positive integer at most 1,000,000"),
    (["toy", "--sweep", ",".join(["0.5"] * 101)], "at most 100 budgets (--sweep)"),
    (["train-base", "--dataset", "toy2d", "--model", "mlp", "--epochs", str(10**12), "--out", "m.safetensors"],
     "--epochs: expected a positive integer at most 100,000"),
    (["default-audit", "--checkpoint", TOY, "--finetune-epochs", str(10**12)], "--finetune-epochs: expected"),
    (["default-audit", "--checkpoint", TOY, "--diagnostic-seeds", ",".join(map(str, range(1001)))], "at most 1,000"),
    (["sweep", "--checkpoint", TOY, "--budgets", "4", "--workers", str(10**9)], "--workers: expected a positive"),
    (["sweep", "--checkpoint", TOY, "--budgets", "4", "--ray-retries", str(10**9)], "--ray-retries: expected a non-"),
    (["sweep", "--checkpoint", TOY, "--budgets", ",".join(map(str, range(1, 33))), "--seeds",
      ",".join(map(str, range(1000)))], "the number of runs of one sweep (methods x budgets x seeds x mitigations) "
                                        "must be a positive integer at most 10,000, got 32000"),
], ids=["compare-seeds", "compare-budgets", "compare-finetune-epochs", "compare-snl-epochs-0", "toy-seeds",
        "toy-steps", "toy-sweep-shares", "train-base-epochs", "default-audit-finetune-epochs",
        "default-audit-diagnostic-seeds", "sweep-workers", "sweep-ray-retries", "sweep-runs"])
def test_a_run_size_past_its_limit_is_refused_before_any_work(capsys, tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "store"))
    err = _one_line(capsys, *argv, *(["--out", tmp_path / "out"] if argv[0] == "default-audit" else []))
    assert expected in err
    assert sorted(os.listdir(tmp_path)) == []  # nothing written: no output folder, no store


def test_the_notebook_api_refuses_the_same_run_sizes(toy_checkpoint):
    import fairlin_core as fl
    from fairlin_core.audits.grid import AuditGrid
    from fairlin_core.jobs.config import JobConfig, TrainBaseConfig
    from fairlin_core.toy import ToyConfig, run_toy, share_sweep
    with pytest.raises(FairLinError, match="at most 1,000 seeds are allowed in one run, got 1,000,000,000"):
        fl.compare(toy_checkpoint, "random", [4], seeds=range(10**9))
    with pytest.raises(FairLinError, match="at most 1,000 seeds are allowed in one run, got more"):
        run_toy(ToyConfig(steps=10), seeds=itertools.count())  # an endless generator is refused, not drawn
    with pytest.raises(FairLinError, match="at most 100 shares"):
        share_sweep(ToyConfig(steps=10), [0.5] * 101, seeds=[0])
    with pytest.raises(FairLinError, match="finetune epochs must be a non-negative integer at most 100,000"):
        fl.linearize(toy_checkpoint, "random", 4, finetune_epochs=10**12)
    with pytest.raises(FairLinError, match="steps must be a positive integer at most 1,000,000"):
        ToyConfig(steps=10**12).validate()
    with pytest.raises(FairLinError, match="snl_finetune_epochs must be a non-negative integer"):
        ToyConfig(snl_finetune_epochs=10**12).validate()
    with pytest.raises(FairLinError, match="SNL epochs must be a positive integer at most 100,000, got 1000000000000"):
        AuditGrid(checkpoint=TOY, snl_epochs=10**12).validate()
    with pytest.raises(FairLinError, match="at most 1,000 seeds"):
        AuditGrid(checkpoint=TOY, seeds=tuple(range(1001))).validate()
    with pytest.raises(FairLinError, match="finetune epochs must be a non-negative integer at most 100,000"):
        JobConfig(checkpoint=TOY, method="random", budget=4, finetune={"epochs": 10**12}).validate()
    with pytest.raises(FairLinError, match="epochs must be a positive integer at most 100,000"):
        TrainBaseConfig(dataset="toy2d", model="mlp", epochs=10**12).validate()
    with pytest.raises(FairLinError, match="epochs must be a positive integer at most 100,000"):
        fl.train_base(toy_checkpoint.dataset(), "mlp", epochs=10**12)


def test_metrics_bound_their_iterations():
    from fairlin_core.metrics.fairness import bootstrap_accuracy
    from fairlin_core.metrics.hessian import lanczos, spectral_density
    with pytest.raises(FairLinError, match="Lanczos max_steps must be a positive integer at most 1,000"):
        lanczos(lambda v: v, torch.ones(3), 10**9)
    with pytest.raises(FairLinError, match="spectral density runs must be a positive integer at most 100"):
        spectral_density(None, runs=10**9)
    with pytest.raises(FairLinError, match="bootstrap draws must be a positive integer at most 100,000"):
        bootstrap_accuracy([0.5], [10], draws=10**12)


def test_the_limits_helpers():
    assert check_count(5, "x", "seeds") == 5 and check_many(range(3), "seeds", "seeds") == [0, 1, 2]
    for bad in (0, -1, True, 2.0, RUN_LIMITS["seeds"] + 1):
        with pytest.raises(FairLinError, match="x must be a positive integer at most 1,000"):
            check_count(bad, "x", "seeds")
    assert check_real(3, "rate", POSITIVE) == 3.0
    for bad in (math.inf, -math.inf, math.nan, 10**400, "1", None):
        with pytest.raises(FairLinError, match="rate must be a finite number > 0, got"):
            check_real(bad, "rate", POSITIVE)
    with pytest.raises(FairLinError, match=r"rate must be > 0, got 0"):
        check_real(0, "rate", POSITIVE)
    assert str(Interval(0.0, 1.0, high_open=True)) == "in [0, 1)" and str(Interval(1.0)) == ">= 1"


# ------------------------------------------------------------------------------------------ real-valued flags

@pytest.mark.parametrize("argv, flag, expected", [
    ([*LINEARIZE, "--out", "out", "--mitigation", "groupdro"], "--eta", "> 0"),
    (COMPARE, "--mu", "> 0"),
    (COMPARE, "--lam-min-progress", "in [0, 1)"),
    (COMPARE, "--temperature", "> 0"),
    (["toy"], "--lr", "> 0"),
    (["toy"], "--linearized", "in [0, 1]"),
    (["sweep", "--checkpoint", TOY, "--budgets", "4"], "--lambda-max", "> 0"),
    (["default-audit", "--checkpoint", TOY, "--out", "out"], "--mu", "> 0"),
])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400"])
def test_every_real_flag_is_finite_and_in_range_at_parse_time(capsys, tmp_path, monkeypatch, argv, flag, expected,
                                                              value):
    monkeypatch.chdir(tmp_path)
    err = _one_line(capsys, *argv, f"{flag}={value}")
    assert f"argument {flag}: expected a finite number {expected}, got '{value}'" in err
    assert os.listdir(tmp_path) == []


def test_the_api_refuses_non_finite_settings():
    from fairlin_core.finetune import FinetuneConfig, MitigationConfig
    from fairlin_core.jobs.config import JobConfig
    from fairlin_core.linearizers import SNLConfig
    from fairlin_core.toy import ToyConfig
    with pytest.raises(FairLinError, match="mitigation eta must be a finite number > 0, got inf"):
        MitigationConfig.coerce({"method": "groupdro", "eta": math.inf})
    with pytest.raises(FairLinError, match="finetune lr must be a finite number > 0, got nan"):
        FinetuneConfig(lr=math.nan).validate()
    with pytest.raises(FairLinError, match="SNL lam must be a finite number > 0, got inf"):
        SNLConfig(lam=math.inf).validate()
    with pytest.raises(FairLinError, match="lr must be a finite number > 0, got inf"):
        ToyConfig(lr=math.inf).validate()
    with pytest.raises(FairLinError, match="finetune option lr must be a finite number, got 1000"):
        JobConfig(checkpoint=TOY, method="random", budget=4, finetune={"lr": 10**400}).validate()


# ---------------------------------------------------------------------------- options checked even where unused

def test_snl_options_are_checked_whatever_the_method(capsys, tmp_path, toy_checkpoint):
    import fairlin_core as fl
    err = _one_line(capsys, *LINEARIZE, "--out", tmp_path / "out", "--snl-epochs", "-1")
    assert "argument --snl-epochs: expected a positive integer at most 100,000, got '-1'" in err
    with pytest.raises(FairLinError, match="SNL epochs must be a positive integer"):
        fl.linearize(toy_checkpoint, "random", 4, snl_epochs=-1, finetune_epochs=0)
    assert not (tmp_path / "out").exists()


def test_a_factory_to_trust_must_name_one(capsys, tmp_path, monkeypatch):
    import fairlin_core as fl
    monkeypatch.delenv("FAIRLIN_TRUSTED_MODEL_CODE", raising=False)
    err = _one_line(capsys, *LINEARIZE, "--out", tmp_path / "out", "--trust-model-code", "\x01#,:" * 1250)
    assert "is not of the form package.module:function" in err and "(5000 characters)" in err
    assert not (tmp_path / "out").exists() and "FAIRLIN_TRUSTED_MODEL_CODE" not in os.environ
    for bad in ("mine:build,os:system", "a" * 300 + ":build", "no_function"):
        with pytest.raises(FairLinError, match="is not of the form package.module:function"):
            fl.trust_model_code(bad)
    assert "FAIRLIN_TRUSTED_MODEL_CODE" not in os.environ  # nothing was trusted, os:system least of all


@pytest.mark.parametrize("argv", [
    [*LINEARIZE, "--out", "out"], COMPARE, ["audit", "--base", TOY, "--linearized", TOY],
], ids=["linearize", "compare", "audit"])
@pytest.mark.parametrize("option", ["garbage", "n=5"])
def test_dataset_options_without_a_dataset_are_refused(capsys, tmp_path, monkeypatch, argv, option):
    monkeypatch.chdir(tmp_path)
    err = _one_line(capsys, *argv, "--dataset-option", option)
    assert f"--dataset-option '{option}' configures the dataset of --dataset; expected --dataset NAME with it" in err
    assert os.listdir(tmp_path) == []


# -------------------------------------------------------------------------------------------------- echoes

@pytest.mark.parametrize("argv", [
    ["relu-count", "--model", "mlp", "--input-size", "2", "--width", LONG],
    ["relu-count", "--model", "mlp", "--input-size", "2", "--stem", LONG],
    ["relu-count", "--model", "mlp", "--input-size", "2", "--stem", "y " * 50_000],
    ["relu-count", "--model", "mlp", "--input-size", "2", f"--thin={LONG}"],
    [LONG],
    ["toy", "--seeds", "1", LONG],
    ["toy", f"--s={LONG}"],
    ["toy", "--lr", LONG],
    ["toy", "--seeds", LONG],
    ["toy", "--sweep", LONG],
    [*LINEARIZE, "--out", "out", "--method", LONG],
    [*LINEARIZE, "--out", "out", "--select", LONG],
    [*LINEARIZE, "--out", "out", "--trust-model-code", LONG],
    [*LINEARIZE, "--out", "out", "--dataset-option", LONG],
    [*COMPARE, "--seeds", LONG],
    ["sweep", "--checkpoint", TOY, "--budgets", "4", "--mitigation", LONG],
    ["sweep", "--checkpoint", TOY, "--budgets", "4", "--diagnostics", LONG],
    ["audit", "--base", TOY, "--linearized", TOY, "--diagnostics", LONG],
    ["default-audit", "--checkpoint", TOY, "--out", "da", "--methods", LONG],
    ["cost", "--checkpoint", TOY, "--profile", LONG[:200]],  # a file name the OS still takes
    ["runs", "--status", LONG],
    ["sweep", "--checkpoint", TOY, "--budgets", "4", "--executor", "ray", "--ray-address", LONG],
], ids=["int", "choice", "choice-with-spaces", "explicit-argument", "command", "unrecognized",
        "ambiguous-option", "float", "count", "toy-sweep", "method", "select", "trust-model-code", "dataset-option",
        "seed-list", "sweep-mitigation", "sweep-diagnostics", "audit-diagnostics", "default-audit-methods",
        "cost-profile", "runs-status", "ray-address"])
def test_an_echo_of_user_input_is_at_most_80_characters(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "store"))
    err = _one_line(capsys, *argv)
    longest = max(len(run) for run in re.findall(r"(?:y ?)+", err))
    assert longest <= ECHO_LIMIT, err[:400]
    assert len(err) < 400 and "characters)" in err  # the cut says how long the input was



def test_a_json_flag_is_never_echoed(capsys, tmp_path, monkeypatch):
    """JSON flags are parsed by the bounded parser, whose messages say where the text broke, never quote it."""
    monkeypatch.chdir(tmp_path)
    err = _one_line(capsys, "import-checkpoint", "missing.pth", "--format", "state-dict", "--arch", "mlp", "--dataset",
                    "toy2d", "--out", "i.safetensors", "--model-kwargs", "{" + LONG)
    assert "--model-kwargs is not valid JSON" in err and "yy" not in err and len(err) < 400, err[:400]

# ---------------------------------------------------------------------------------------------- torch warnings

def test_a_torch_warning_on_the_way_to_a_refusal_adds_no_stderr_line(tmp_path):
    """Loading a state dict with a sparse tensor makes torch warn (UserWarning from torch.serialization) before the
    import refuses it: stderr holds the one error line, in a real process (pytest would catch the warning)."""
    torch.save({"layers.1.weight": torch.eye(16, 2).to_sparse()}, tmp_path / "sparse.pth")
    proc = subprocess.run([sys.executable, "-m", "fairlin_core", "import-checkpoint", str(tmp_path / "sparse.pth"),
                           "--format", "state-dict", "--arch", "mlp", "--dataset", "toy2d", "--out",
                           str(tmp_path / "i.safetensors")], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default"}, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr[:1000]


def test_only_torch_warnings_are_hidden(capsys, monkeypatch):
    """Inside main, UserWarnings attributed to torch (and torchvision) modules are dropped; the project's own
    warnings and other libraries' still show, and the filters are as they were after main returns."""
    import fairlin_core.cli.data as data

    def warn(args):
        for module in ("torch.serialization", "torchvision.io", "fairlin_core.audits", "numpy"):
            warnings.warn_explicit(f"from {module}", UserWarning, "x.py", 1, module=module)

    monkeypatch.setattr(data, "cmd_datasets", warn)
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert main(["datasets"]) == 0
    assert [str(w.message) for w in shown] == ["from fairlin_core.audits", "from numpy"]
    assert warnings.filters == before
    capsys.readouterr()


# -------------------------------------------------------------------------------------------------- profiles

def test_a_profile_bandwidth_of_zero_is_refused(capsys, tmp_path):
    from fairlin_core.costs.profiles import PROFILE_DIR, load_profile
    profile = json.loads((PROFILE_DIR / "delphi.json").read_text())
    for value in (0, -1, math.inf):
        profile["network"]["bandwidth_mbps"]["value"] = value
        path = tmp_path / "zero.json"
        path.write_text(json.dumps(profile))  # inf is written as Infinity, which Python's json reads back
        err = _one_line(capsys, "cost", "--checkpoint", TOY, "--profile", path)
        assert "field 'network.bandwidth_mbps.value' must be" in err and "> 0" in err
        with pytest.raises(FairLinError, match=r"network\.bandwidth_mbps\.value' must be (a finite number )?> 0"):
            load_profile(path)
    profile["network"]["bandwidth_mbps"]["value"] = 8
    profile["relu"]["online_seconds"]["value"] = 0  # costs may be 0; only divisors must be positive
    path.write_text(json.dumps(profile))
    assert load_profile(path).values["relu"]["online_seconds"] == 0.0
