"""Values no model may hold are refused wherever weights enter (issue 23): NaN, infinite or complex weights and masks
outside [0, 1], on import (every format, the dashboard's upload too) and on loading a checkpoint (a hand-edited
safetensors file); a dataset that does not fit the checkpoint's model; pickles that need a refused global. Every bad
file is built here, in tmp_path."""

import math
import pickle
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import DIGITS, TOY, copy_checkpoint
from fairlin_core.audits.core import run_audit
from fairlin_core.audits.evaluation import evaluate_checkpoint
from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.checkpoints.importers import import_checkpoint, read_weights
from fairlin_core.checkpoints.upload import accept_import, accept_upload
from fairlin_core.errors import CheckpointError, FairLinError
from fairlin_core.jobs import JobConfig
from fairlin_core.models import build_model, mask_names, relu_count, resolve_spec

TOY_ARGS = {"fmt": "state-dict", "arch": "mlp", "dataset": "toy2d", "model_options": {"width": 16}}


def _toy_state(**values):
    """The shipped toy MLP's state dict with tensor ``name`` (dots as ``__``) set to ``values[name]``."""
    state = {k: v.clone() for k, v in load_checkpoint(TOY).model.state_dict().items()}
    for key, value in values.items():
        state[key.replace("__", ".")] = value(state[key.replace("__", ".")])
    return state


def _with(index, value):
    """A change that sets entry ``index`` (of the flattened tensor) to ``value``."""
    def change(tensor):
        tensor.view(-1)[index] = value
        return tensor
    return change


BAD_STATES = {
    "nan-weight": ({"layers__1__weight": _with(slice(0, 3), math.nan)},
                   r"tensor 'layers\.1\.weight' has 3 NaN values; weights must be finite"),
    "inf-bias": ({"layers__3__bias": _with(0, math.inf)},
                 r"tensor 'layers\.3\.bias' has 1 infinite value; weights must be finite"),
    "nan-and-inf": ({"layers__5__weight": _with(slice(0, 2), torch.tensor([math.nan, -math.inf]))},
                    r"has 1 NaN value and 1 infinite value"),
    "complex": ({"layers__5__bias": lambda t: t.to(torch.complex64)},
                r"tensor 'layers\.5\.bias' is complex \(complex64\); weights must be real"),
    "mask-minus-5": ({"layers__2__alpha": _with(0, -5.0)},
                     r"mask 'layers\.2\.alpha' has values from -5 to 1; masks must lie in \[0, 1\]"),
    "mask-nan": ({"layers__4__alpha": _with(3, math.nan)},
                 r"'layers\.4\.alpha' has 1 NaN value; (masks must lie in \[0, 1\]|weights must be finite)"),
    "mask-1.5": ({"layers__4__alpha": _with(0, 1.5)}, r"mask 'layers\.4\.alpha' has values from 1 to 1\.5"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_import_refuses_values_no_model_may_hold_and_writes_nothing(case, tmp_path):
    change, message = BAD_STATES[case]
    torch.save({"state_dict": _toy_state(**change)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=message) as info:
        import_checkpoint(tmp_path / "bad.pth", out=tmp_path / "out.safetensors", **TOY_ARGS)
    assert str(info.value).startswith("bad.pth: ")
    assert not (tmp_path / "out.safetensors").exists() and not (tmp_path / "out.json").exists()


def test_integer_buffers_and_masks_at_0_and_1_import(tmp_path):
    """num_batches_tracked (int64) is no weight to check; masks of exactly 0 and 1 are the two ends of [0, 1]."""
    model = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=4))
    full = relu_count(model)
    state = model.state_dict()
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    state["layer1.0.relu1.alpha"].zero_()
    torch.save(state, tmp_path / "mine.pth")
    imported = import_checkpoint(tmp_path / "mine.pth", "state-dict", "resnet18", "digits", tmp_path / "mine",
                                 model_options={"width": 4})
    assert imported.sidecar["kind"] == "linearized"
    assert imported.relu_count == full - state["layer1.0.relu1.alpha"].numel()


def test_an_snl_mask_with_nan_is_refused_though_binarising_would_hide_it(tmp_path):
    """SNL's masks are binarised at alpha > 1e-2 on import (NaN > 1e-2 is False): the NaN must be refused before."""
    model = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=4))
    state = {k.replace("relu1.alpha", "alpha1.alphas").replace("relu2.alpha", "alpha2.alphas"):
             v.unsqueeze(0) if k.endswith(".alpha") else v for k, v in model.state_dict().items()}
    state["layer2.1.alpha2.alphas"].view(-1)[5] = math.nan
    torch.save({"state_dict": state}, tmp_path / "snl.pth.tar")
    with pytest.raises(CheckpointError, match=r"tensor 'layer2\.1\.alpha2\.alphas' has 1 NaN value"):
        import_checkpoint(tmp_path / "snl.pth.tar", "snl", "resnet18", "digits", tmp_path / "out",
                          model_options={"width": 4})


@pytest.mark.parametrize("case", ["nan-weight", "complex", "mask-minus-5", "mask-nan", "mask-1.5"])
def test_loading_a_hand_edited_safetensors_checkpoint_refuses_its_values(case, tmp_path):
    """A FairLin checkpoint whose weights were edited after it was written (names and shapes still match)."""
    change, message = BAD_STATES[case]
    weights = copy_checkpoint(tmp_path / "ckpt")
    assert set(load_file(weights)) == set(_toy_state())  # the same names (and shapes): only values change
    save_file(_toy_state(**change), weights, metadata={"format": "fairlin-checkpoint"})
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(weights)
    assert str(info.value).startswith(f"{weights}: {'mask' if case.startswith('mask') else 'tensor'} ")


def test_dashboard_uploads_refuse_nan_weights_and_store_nothing(tmp_path):
    weights = copy_checkpoint(tmp_path / "ckpt")
    save_file(_toy_state(layers__3__weight=_with(7, math.nan)), weights, metadata={"format": "fairlin-checkpoint"})
    store = tmp_path / "store"
    with pytest.raises(FairLinError, match=r"upload refused: model\.safetensors: tensor 'layers\.3\.weight' has 1 NaN"):
        accept_upload("model.safetensors", weights.read_bytes(), weights.with_suffix(".json").read_bytes(), store)
    torch.save(_toy_state(layers__2__alpha=_with(0, -5.0)), tmp_path / "bad.pth")
    with pytest.raises(FairLinError, match=r"import refused: .*mask 'layers\.2\.alpha' has values from -5"):
        accept_import("bad.pth", (tmp_path / "bad.pth").read_bytes(), "state-dict", "mlp", "toy2d", store, width=16)
    assert not store.exists() or not any(store.iterdir())


def test_mask_names_are_the_state_dict_keys_of_the_sites():
    model = load_checkpoint(TOY).model
    assert mask_names(model) == {"layers.2.alpha", "layers.4.alpha"}
    with torch.device("meta"):
        meta = build_model(resolve_spec("resnet18", 10, (3, 32, 32)))
    assert len(mask_names(meta)) == 16 and mask_names(meta) <= set(meta.state_dict())


# ----------------------------------------------------------------------------- a dataset that does not fit

@pytest.mark.parametrize("source, dataset, message", [
    (TOY, "digits", r"expects input \(2,\) with 2 classes, but dataset digits has input \(1, 8, 8\) with 10 classes"),
    (DIGITS, "toy2d", r"expects input \(1, 8, 8\) with 10 classes, but dataset toy2d has input \(2,\) with 2 classes"),
], ids=["toy-mlp-with-digits", "digits-resnet-with-toy2d"])
def test_a_sidecar_whose_dataset_does_not_fit_its_model_is_refused_before_any_work(source, dataset, message, tmp_path,
                                                                                    monkeypatch):
    weights = copy_checkpoint(tmp_path / "ckpt", lambda s: s.update(dataset={"name": dataset}), source=source)

    def no_forward(*args, **kwargs):
        raise AssertionError("the model ran on data it does not take")
    monkeypatch.setattr("fairlin_core.audits.evaluation.evaluate_model", no_forward)
    monkeypatch.setattr("fairlin_core.audits.core.audit_models", no_forward)
    with pytest.raises(FairLinError, match=message) as info:
        evaluate_checkpoint(weights)
    assert str(info.value).startswith(str(weights)) and "\n" not in str(info.value)
    with pytest.raises(FairLinError, match=message):
        run_audit(weights, weights)
    with pytest.raises(FairLinError, match=message):  # a sweep's runs: refused before anything is queued
        JobConfig(checkpoint=str(weights), method="random", budget=0.5).validate()


# ----------------------------------------------------------------------------- pickles needing a refused global

def test_a_pickle_needing_posix_system_names_it_and_runs_nothing(tmp_path):
    """Built opcode by opcode (nothing is pickled, nothing can run here): GLOBAL posix.system, the argument
    ``touch MARKER``, REDUCE. torch 2.14 says "Trying to load unsupported GLOBAL posix.system whose module posix is
    blocked"; the refusal names the global and says how to convert the file."""
    marker = tmp_path / "payload_ran"
    command = f"touch {marker}".encode()
    payload = b"\x80\x02cposix\nsystem\nX" + len(command).to_bytes(4, "little") + command + b"\x85R."
    path = tmp_path / "evil.pth"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError) as info:
        read_weights(path)
    message = str(info.value)
    assert message.startswith("evil.pth needs the global posix.system, which weights-only loading refuses")
    assert "re-save it as a plain state dict with torch.save(model.state_dict(), path)" in message
    assert "\n" not in message and not marker.exists()


def test_a_protocol_4_pickle_gives_the_unpicklers_reason_without_a_warning(tmp_path):
    """pickle.dump's own protocols (4, 5) are not torch.save files: the reason is torch's (an unsupported opcode),
    not its boilerplate, and torch's protocol warning is not printed."""
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match=r"plain\.pt cannot be read by the weights-only unpickler "
                                                  r"\(Unsupported operand 149\); .* torch\.save\(model\.state_dict"):
            read_weights(path)
    assert not caught
