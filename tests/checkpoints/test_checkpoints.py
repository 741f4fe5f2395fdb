"""Checkpoints: safetensors round trip and refusal of unsafe, corrupt or mismatched files."""

import json
import pickle

import pytest
import torch

from fairlin_core.checkpoints import load_checkpoint, save_checkpoint
from fairlin_core.errors import CheckpointError
from fairlin_core.models import build_model, relu_count, resolve_spec


@pytest.fixture
def saved(tmp_path):
    spec = resolve_spec("resnet18", 3, (1, 8, 8), width=4)
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():
        next(iter(dict(model.named_modules())["layer2.0.relu1"].parameters())).zero_()
    path = save_checkpoint(tmp_path / "model.safetensors", model, spec, {"kind": "base", "seed": 7})
    return model, spec, path


def test_round_trip_restores_weights_masks_and_sidecar(saved):
    model, spec, path = saved
    assert path.exists() and path.with_suffix(".json").exists()
    loaded = load_checkpoint(path)
    assert loaded.spec == spec and loaded.sidecar["seed"] == 7 and loaded.sidecar["kind"] == "base"
    assert relu_count(loaded.model) == relu_count(model) < 7680
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert not loaded.model.training
    assert load_checkpoint(path.with_suffix(".json")).spec == spec
    assert load_checkpoint(path.parent).spec == spec


def test_no_temporary_files_are_left_behind(saved):
    _, _, path = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.safetensors"]


def test_refuses_torch_save_archive_without_unpickling(saved, tmp_path):
    model, _, path = saved
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(path)


def test_refuses_plain_pickle(saved):
    _, _, path = saved
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)


@pytest.mark.parametrize("cut", [4, 100, -50])
def test_refuses_truncated_file(saved, cut):
    _, _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_refuses_architecture_mismatch(saved):
    _, _, path = saved
    sidecar_file = path.with_suffix(".json")
    sidecar = json.loads(sidecar_file.read_text())
    sidecar["model"]["options"]["width"] = 8
    sidecar_file.write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="does not match the architecture.*wrong shape"):
        load_checkpoint(path)
    sidecar["model"]["name"] = "resnet34"
    sidecar["model"]["options"]["width"] = 4
    sidecar_file.write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="missing .* tensor"):
        load_checkpoint(path)


def test_refuses_missing_or_broken_sidecar(saved):
    _, _, path = saved
    sidecar_file = path.with_suffix(".json")
    sidecar_file.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    sidecar_file.write_text(json.dumps({"weights": "x"}))
    with pytest.raises(CheckpointError, match="not a FairLin checkpoint sidecar"):
        load_checkpoint(path)
    sidecar_file.unlink()
    with pytest.raises(CheckpointError, match="sidecar .* not found"):
        load_checkpoint(path)


def test_missing_file_names_the_expected_layout(tmp_path):
    with pytest.raises(CheckpointError, match="not found; expected a .safetensors file"):
        load_checkpoint(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("width", [8, 12, 16, 20, 24, 32])
def test_headers_starting_with_0x80_are_not_mistaken_for_pickles(tmp_path, width):
    spec = resolve_spec("mlp", 10, (1, 8, 8), depth=2, width=width)
    path = save_checkpoint(tmp_path / f"mlp{width}.safetensors", build_model(spec), spec, {})
    assert load_checkpoint(path).spec == spec
