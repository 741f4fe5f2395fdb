"""``--json`` output is strict JSON: metrics that are NaN (an empty group, NaN weights in a model in memory) or
infinite are written as null, never as NaN (invalid JSON) and never as a ValueError after the work is done."""

import copy
import json
import math

import numpy as np
import torch

import fairlin_core as fl
from conftest import copy_checkpoint, run_cli
from fairlin_core.checkpoints import Checkpoint
from fairlin_core.cli.common import print_json
from fairlin_core.runtime import json_ready


def _strict(text):
    """``text`` parsed as JSON that holds no NaN / Infinity constants."""
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")
    return json.loads(text, parse_constant=refuse)


def test_evaluate_json_writes_an_empty_groups_accuracy_as_null(capsys, tmp_path):
    """The toy data with n=10 leaves no minority point in the test split: its accuracy is NaN."""
    weights = copy_checkpoint(tmp_path / "ckpt", lambda s: s["dataset"]["options"].update(n=10))
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", weights, "--json")
    assert code == 0, err
    groups = {row["group"]: row for row in _strict(out)["groups"]}
    assert groups["minority"]["n"] == 0 and groups["minority"]["accuracy"] is None
    assert groups["majority"]["accuracy"] is not None


def test_audit_json_of_a_model_with_nan_weights_writes_null(capsys, toy_checkpoint):
    """A model in memory is never checked like a file: NaN weights give a NaN parameter distance and the JSON the
    CLI's ``audit --json`` prints has it as null."""
    model = copy.deepcopy(toy_checkpoint.model)
    with torch.no_grad():
        model.layers[1].weight[0, 0] = math.nan
    broken = Checkpoint(model, toy_checkpoint.spec, dict(toy_checkpoint.sidecar, kind="linearized"))
    result = fl.audit(toy_checkpoint, broken)
    assert math.isnan(result.param_distance)
    print_json(result.to_json())
    data = _strict(capsys.readouterr().out)
    assert data["param_distance"] is None and data["accuracy"]


def test_json_ready_turns_nan_and_infinities_of_any_kind_into_null():
    value = {"a": math.inf, "b": np.float32("nan"), "c": [np.float64(-np.inf), torch.tensor(2.5)],
             "d": np.array([1.0, np.nan]), 3: (np.int64(4), "x")}
    assert json_ready(value) == {"a": None, "b": None, "c": [None, 2.5], "d": [1.0, None], "3": [4, "x"]}
