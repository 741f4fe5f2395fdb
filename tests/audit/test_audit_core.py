"""The audit: JSON contract, CSV output and refusals, on tiny checkpoints written to a temporary folder."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fairlin_core.audits import DIAGNOSTICS, audit_to_json, parse_diagnostics, run_audit
from fairlin_core.checkpoints import save_checkpoint
from fairlin_core.cli import main
from fairlin_core.data import load_dataset
from fairlin_core.errors import FairLinError
from fairlin_core.checkpoints import dataset_reference
from fairlin_core.models import activation_sites, build_model, resolve_spec

PER_GROUP_KEYS = ["accuracy", "grad_norms", "hessian", "boundary", "bound"]


def partly_linearized(model, keep=0.3, seed=0):
    """A copy with ~70% of its masks zeroed and slightly moved weights (as after a finetune)."""
    linearized = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, site in activation_sites(linearized):
            site.alpha.copy_((torch.rand(site.alpha.shape, generator=generator) < keep).float())
        for parameter in linearized.parameters():
            if parameter.requires_grad:
                parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    return linearized


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    bundle = load_dataset("digits")
    metadata = {"kind": "base", "dataset": dataset_reference(bundle), "seed": 0}
    torch.manual_seed(0)
    spec = resolve_spec("mlp", 10, (1, 8, 8), depth=2, width=32)
    mlp = build_model(spec)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    train = bundle.splits["train"]
    for _ in range(100):
        optimizer.zero_grad()
        F.cross_entropy(mlp(train.x), train.y).backward()
        optimizer.step()
    paths = {"base": save_checkpoint(folder / "base.safetensors", mlp.eval(), spec, metadata),
             "lin": save_checkpoint(folder / "lin.safetensors", partly_linearized(mlp), spec, metadata)}
    resnet_spec = resolve_spec("resnet18", 10, (1, 8, 8), width=4)
    resnet = build_model(resnet_spec).eval()
    paths["resnet"] = save_checkpoint(folder / "resnet.safetensors", resnet, resnet_spec, metadata)
    paths["resnet_lin"] = save_checkpoint(folder / "resnet_lin.safetensors", partly_linearized(resnet), resnet_spec,
                                          metadata)
    narrow_spec = resolve_spec("mlp", 10, (1, 8, 8), depth=2, width=8)
    paths["narrow"] = save_checkpoint(folder / "narrow.safetensors", build_model(narrow_spec), narrow_spec, metadata)
    other_data = {**metadata, "dataset": dataset_reference(load_dataset("digits", minor_fraction=0.5))}
    paths["other_data"] = save_checkpoint(folder / "other_data.safetensors", mlp, spec, other_data)
    return paths


def run_cli(capsys, *argv):
    assert main(["audit", *argv]) == 0
    return capsys.readouterr()


def strict_json(text):
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))


def test_json_shape_and_csvs(checkpoints, capsys, tmp_path):
    out = run_cli(capsys, "--base", str(checkpoints["base"]), "--linearized", str(checkpoints["lin"]), "--json",
                  "--diagnostics", "accuracy,grad,hessian,boundary,bound", "--out", str(tmp_path / "tables"))
    result = strict_json(out.out)
    assert list(result) == [*PER_GROUP_KEYS, "param_distance"]
    assert isinstance(result["param_distance"], float) and result["param_distance"] > 0
    for key in PER_GROUP_KEYS:
        assert [row["group"] for row in result[key]] == [str(d) for d in range(10)], key
    assert {"relative_drop", "relative_drop_low", "accuracy_base", "accuracy_lin"} <= set(result["accuracy"][0])
    assert {"grad_norm_base", "grad_norm_lin"} <= set(result["grad_norms"][0])
    assert {"top_eigenvalue_base", "top_eigenvalue_lin"} <= set(result["hessian"][0])
    assert {"softmax_margin_mean_base", "input_margin_mean_lin"} <= set(result["boundary"][0])
    assert {"bound", "excess_loss", "holds"} <= set(result["bound"][0])
    base_grad = [row["grad_norm_base"] for row in result["grad_norms"]]
    assert [row["grad_norm"] for row in result["bound"]] == pytest.approx(base_grad)
    written = {p.stem for p in (tmp_path / "tables").glob("*.csv")}
    assert written == {"summary", "accuracy", "grad_norms", "grad_samples", "hessian", "boundary",
                       "boundary_samples", "bound"}


def test_default_is_accuracy_only_and_text_output(checkpoints, capsys):
    result = strict_json(run_cli(capsys, "--base", str(checkpoints["base"]), "--linearized",
                                 str(checkpoints["lin"]), "--json").out)
    assert list(result) == ["accuracy", "param_distance"]
    text = run_cli(capsys, "--base", str(checkpoints["base"]), "--linearized", str(checkpoints["lin"])).out
    assert "worst_group_accuracy" in text and "relative_drop" in text


def test_resnet_pair_through_the_cli(checkpoints, capsys):
    result = strict_json(run_cli(capsys, "--base", str(checkpoints["resnet"]), "--linearized",
                                 str(checkpoints["resnet_lin"]), "--json", "--split", "val",
                                 "--diagnostics", "accuracy,boundary").out)
    assert list(result) == ["accuracy", "boundary", "param_distance"]
    assert len(result["boundary"]) == 10


def test_attributions_and_density_tables(checkpoints):
    progress = []
    result = run_audit(checkpoints["base"], checkpoints["lin"], diagnostics=["attr", "density"], split="val",
                       progress=progress.append)
    assert result["attr"].groupby(["model", "method", "group"]).size().eq(64).all()
    for _, rows in result["density"].groupby(["model", "group"]):
        assert np.trapezoid(rows["density"], rows["eigenvalue"]) == pytest.approx(1.0)
    assert set(result["density_nodes"]["model"]) == {"base", "lin"}
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert set(audit_to_json(result)) == {"attr", "density", "param_distance"}


def test_unknown_diagnostic_lists_valid_names():
    with pytest.raises(FairLinError) as error:
        parse_diagnostics("accuracy,curvature")
    assert "'curvature'" in str(error.value) and all(name in str(error.value) for name in DIAGNOSTICS)
    assert parse_diagnostics("all") == DIAGNOSTICS
    assert parse_diagnostics(" bound, accuracy ") == ("accuracy", "bound")


@pytest.mark.parametrize("other,message", [("narrow", "architecture"), ("other_data", "same data"),
                                           ("resnet", "architecture")])
def test_pairs_must_share_architecture_and_data(checkpoints, other, message):
    with pytest.raises(FairLinError, match=message):
        run_audit(checkpoints["base"], checkpoints[other])


def test_unknown_split(checkpoints):
    with pytest.raises(FairLinError, match="no split 'holdout'"):
        run_audit(checkpoints["base"], checkpoints["lin"], split="holdout")


def test_json_turns_nan_into_null():
    result = {"accuracy": pd.DataFrame({"group": ["a", "b"], "n": [3, 0], "accuracy_base": [1.0, float("nan")]}),
              "grad_samples": pd.DataFrame({"group": ["a"]}), "param_distance": 0.5}
    data = audit_to_json(result)
    assert data == {"accuracy": [{"group": "a", "n": 3, "accuracy_base": 1.0},
                                 {"group": "b", "n": 0, "accuracy_base": None}], "param_distance": 0.5}
    assert strict_json(json.dumps(data, allow_nan=False)) == data
