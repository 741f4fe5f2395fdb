"""--mitigation NAME on linearize, compare, sweep and default-audit: method names, the --mitigate alias,
the sweep's old on/both choices, --select; bad names exit 2 with one line."""

import json

import pytest

from fairlin_core.cli import build_parser, main
from fairlin_core.cli.jobs import sweep_configs
from fairlin_core.finetune import MitigationConfig
from fairlin_core.linearizers import SNLConfig
from conftest import TOY


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:  # refused while parsing (e.g. a flag out of its range)
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


LINEARIZE = ["linearize", "--checkpoint", TOY, "--method", "random", "--budget", "0.5", "--finetune-epochs", "1",
             "--json"]


@pytest.mark.parametrize("argv,method", [(["--mitigation", "groupdro", "--eta", "0.2"], "groupdro"),
                                         (["--mitigation", "reweight"], "reweight"),
                                         (["--mitigate", "--mu", "0.05", "--normalize"], "lagrangian"),
                                         (["--mitigation", "lagrangian", "--lambda-max", "1"], "lagrangian"),
                                         (["--mitigation", "none", "--select", "worst-group"], None)])
def test_linearize_takes_a_mitigation_by_name(capsys, tmp_path, argv, method):
    code, out, _ = run(capsys, *LINEARIZE, "--out", tmp_path / "m", *argv)
    result = json.loads(out)
    assert code == 0
    assert (result["mitigation"] or {}).get("method") == method
    sidecar = json.loads((tmp_path / "m" / "model.json").read_text())
    assert sidecar["mitigation"] == result["mitigation"]
    if "--eta" in argv:
        assert result["mitigation"]["eta"] == 0.2
    if "--normalize" in argv:
        assert result["mitigation"]["normalize"] is True and result["mitigation"]["mu"] == 0.05
    if "--select" in argv:
        assert sidecar["configuration"]["finetune_select"] == "worst-group"


def test_mitigate_is_an_alias_of_mitigation_lagrangian(capsys, tmp_path):
    _, alias, _ = run(capsys, *LINEARIZE, "--out", tmp_path / "a", "--mitigate")
    _, named, _ = run(capsys, *LINEARIZE, "--out", tmp_path / "b", "--mitigation", "lagrangian")
    alias, named = json.loads(alias), json.loads(named)
    assert alias["mitigation"] == named["mitigation"] and alias["groups"] == named["groups"]


@pytest.mark.parametrize("argv,message", [
    ([*LINEARIZE, "--mitigation", "dro"], "unknown mitigation 'dro'; expected one of none, lagrangian, reweight"),
    ([*LINEARIZE, "--mitigate", "--mitigation", "groupdro"], "--mitigate means --mitigation lagrangian"),
    ([*LINEARIZE, "--eta", "0.1"], "--eta configure a mitigation"),
    ([*LINEARIZE, "--mitigation", "groupdro", "--eta", "0"], "argument --eta: expected a finite number > 0"),
    ([*LINEARIZE, "--select", "best"], "unknown selection 'best'"),
    (["compare", "--checkpoint", TOY, "--method", "random", "--budgets", "0.5", "--mitigation", "none"],
     "compare sets a mitigated finetune against the plain one"),
    (["compare", "--checkpoint", TOY, "--method", "random", "--budgets", "0.5", "--mitigation", "magic"],
     "unknown mitigation 'magic'"),
    (["sweep", "--checkpoint", TOY, "--budgets", "0.5", "--mitigation", "on,dro"], "unknown mitigation 'dro'"),
    (["default-audit", "--checkpoint", TOY, "--mitigation", "none"], "need a method"),
])
def test_bad_mitigation_input_exits_2_with_one_line(capsys, tmp_path, argv, message):
    extra = ["--out", tmp_path / "o"] if argv[0] in ("linearize", "default-audit") else []
    extra += ["--store", tmp_path / "store"] if argv[0] == "sweep" else []
    code, _, err = run(capsys, *argv, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("choice,methods", [("none", [None]), ("on", ["lagrangian"]), ("both", [None, "lagrangian"]),
                                            ("none,reweight,groupdro", [None, "reweight", "groupdro"]),
                                            ("groupdro,on", ["groupdro", "lagrangian"])])
def test_sweep_mitigation_choices_old_and_new(choice, methods):
    args = build_parser("sweep").parse_args(["sweep", "--checkpoint", TOY, "--budgets", "0.5", "--mitigation", choice,
                                             "--mu", "0.05", "--select", "constrained"])
    configs, _ = sweep_configs(args)
    assert [c.recipe.mitigation and c.recipe.mitigation.method for c in configs] == methods
    assert all(c.recipe.mitigation.mu == 0.05 for c in configs if c.recipe.mitigation_name == "lagrangian")
    assert all(c.recipe.finetune.select == "constrained" for c in configs)


def test_a_sweep_names_each_runs_mitigation_and_stores_its_recipe(capsys, tmp_path):
    code, out, _ = run(capsys, "sweep", "--checkpoint", TOY, "--methods", "random", "--budgets", "8",
                       "--finetune-epochs", "0", "--mitigation", "none,groupdro", "--eta", "0.05",
                       "--store", tmp_path / "store")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert "mitigation=none " in lines[0] and "mitigation=groupdro eta 0.05 " in lines[1]  # never "off"
    configs = [run_config.recipe for run_config in sweep_configs(build_parser("sweep").parse_args(
        ["sweep", "--checkpoint", TOY, "--methods", "random", "--budgets", "8", "--finetune-epochs", "0",
         "--mitigation", "none,groupdro", "--eta", "0.05"]))[0]]
    assert [c.mitigation for c in configs] == [None, MitigationConfig(method="groupdro", eta=0.05)]


def test_default_audit_builds_its_template_recipe_from_the_flags(capsys, tmp_path):
    argv = ["default-audit", "--checkpoint", TOY, "--methods", "random", "--budgets", "50%", "--seeds", "0",
            "--diagnostics", "", "--detail", "", "--mitigation", "groupdro", "--finetune-epochs", "0",
            "--out", tmp_path / "audit"]
    code, _, _ = run(capsys, *argv)
    grid = json.loads((tmp_path / "audit" / "meta.json").read_text())["grid"]
    assert code == 0 and grid["mitigation"] == MitigationConfig(method="groupdro").to_dict()
    assert grid["finetune"]["epochs"] == 0 and grid["snl"] == SNLConfig().to_dict()  # unset flags: the defaults
    configs = json.loads((tmp_path / "audit" / "configs.json").read_text())
    assert [c["mitigation"] and c["mitigation"]["method"] for c in configs.values()] == [None, "groupdro"]
