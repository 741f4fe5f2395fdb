"""Job configs: canonical hashing (defaults, budget spellings, data root, checkpoint identity) and
refusal of invalid configs with a message saying what was expected."""

import shutil

import pytest

from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.errors import FairLinError
from fairlin_core.jobs import JobConfig
from conftest import TOY



def config(**changes):
    return JobConfig(**{"checkpoint": TOY, "method": "snl", "budget": 0.5, **changes})


def test_equal_configs_hash_equally_whatever_is_spelled_out():
    plain = config().canonical_hash()
    assert config(budget="50%").canonical_hash() == plain
    assert config(budget="0.5").canonical_hash() == plain
    assert config(snl={"epochs": 100}, finetune={"lr": 1e-3, "epochs": 20}).canonical_hash() == plain
    assert config(finetune={"ce_weight": 1}).canonical_hash() == plain  # int and float spellings
    assert config(data_root="/somewhere/else").canonical_hash() == plain
    assert config(checkpoint=str(SHIPPED_CHECKPOINTS / "toy2d_mlp.json")).canonical_hash() == plain
    assert JobConfig.from_dict(config().to_dict()).canonical_hash() == plain
    assert config(mitigation={"mu": 0.01}).canonical_hash() == config(mitigation={"mu": 0.01, "tolerance": 0}
                                                                      ).canonical_hash()
    assert config(mitigation="lagrangian").canonical_hash() == config(mitigation={"mu": 0.01}).canonical_hash()
    assert config(mitigation="none").canonical_hash() == plain
    assert config(finetune={"select": "auto"}).canonical_hash() == plain
    assert config(precision="fp32").canonical_hash() == plain  # fp32 configs keep their pre-precision hashes
    different = [config(seed=1), config(budget=16), config(method="random"), config(snl={"epochs": 2}),
                 config(mitigation={"mu": 0.01}), config(diagnostics=["accuracy"]), config(mitigation="reweight"),
                 config(mitigation="groupdro"), config(mitigation={"mu": 0.01, "normalize": True}),
                 config(finetune={"select": "worst-group"}), config(finetune={"select": "overall"}),
                 config(precision="bf16")]
    hashes = {plain, *(c.canonical_hash() for c in different)}
    assert len(hashes) == len(different) + 1


def test_a_format_1_mitigation_dict_still_reads_as_the_lagrangian():
    """Stores written before mitigation methods hold {"mu", "tolerance"}: they validate, as the lagrangian."""
    old = JobConfig.from_dict({"checkpoint": TOY, "method": "snl", "budget": 0.5, "mitigation": {"mu": 0.5, "tolerance": 0.0}})
    assert old.validate().mitigation == {"method": "lagrangian", "mu": 0.5, "tolerance": 0.0, "normalize": False,
                                         "lambda_max": None, "eta": 0.01}


def test_validated_config_is_plain_json_with_defaults_filled():
    validated = config(budget="10%", diagnostics="grad,accuracy").validate()
    data = validated.to_dict()
    assert data["checkpoint"] == str(SHIPPED_CHECKPOINTS.resolve() / "toy2d_mlp.safetensors")
    assert data["budget"] == "10%" and data["diagnostics"] == ["accuracy", "grad"]
    assert data["snl"]["epochs"] == 100 and data["finetune"]["epochs"] == 20 and data["mitigation"] is None
    assert JobConfig.from_dict(data).validate() == validated


def test_a_replaced_checkpoint_is_a_different_run(tmp_path):
    for suffix in (".safetensors", ".json"):
        shutil.copy(SHIPPED_CHECKPOINTS / f"toy2d_mlp{suffix}", tmp_path / f"model{suffix}")
    copy = config(checkpoint=str(tmp_path / "model.safetensors"))
    before = copy.canonical_hash()
    assert before != config().canonical_hash()  # same content, another path
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert copy.canonical_hash() != before


@pytest.mark.parametrize("changes,message", [
    ({"method": "magic"}, "unknown method 'magic'"),
    ({"budget": [0.5]}, "wrong type"),
    ({"budget": True}, "wrong type"),
    ({"budget": "ten"}, "not a number"),
    ({"budget": 1000}, "above the base model's 32 ReLUs"),
    ({"budget": 0}, "budget must be positive"),
    ({"checkpoint": "/no/such/model.safetensors"}, "not found"),
    ({"diagnostics": ["accuracy", "vibes"]}, "unknown diagnostic(s) 'vibes'"),
    ({"method": "deepreduce"}, "ResNets"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"precision": "fp16"}, "precision must be one of fp32, bf16, got 'fp16'"),
    ({"snl": {"epochs": 0}}, "SNL epochs must be a positive integer"),
    ({"snl": {"speed": 2}}, "unknown snl option(s) speed"),
    ({"finetune": {"epochs": 1.5}}, "finetune option epochs must be an integer"),
    ({"mitigation": {"mu": -1}}, "mitigation mu must be > 0"),
    ({"mitigation": "dro"}, "unknown mitigation 'dro'; expected one of none, lagrangian, reweight, groupdro"),
    ({"mitigation": {"method": "groupdro", "eta": 0}}, "mitigation eta must be > 0"),
    ({"mitigation": {"normalize": 1}}, "mitigation option normalize must be true or false"),
    ({"finetune": {"select": "best"}}, "unknown selection 'best'"),
    ({"dataset": {"name": "mnist"}}, "unknown dataset 'mnist'"),
    ({"dataset": {"name": "toy2d", "options": {"shape": "paper", "size": 3}}}, "unknown option(s) size"),
    ({"dataset": {"name": "toy2d"}, "diagnostics": ["accuracy"]}, "no dataset override"),
])
def test_invalid_configs_are_refused_with_a_clear_message(changes, message):
    with pytest.raises(FairLinError) as error:
        config(**changes).validate()
    assert message in str(error.value)


def test_from_dict_refuses_unknown_and_missing_keys():
    with pytest.raises(FairLinError, match="unknown job config key"):
        JobConfig.from_dict({"checkpoint": TOY, "method": "snl", "budget": 0.5, "epochs": 3})
    with pytest.raises(FairLinError, match="lacks budget"):
        JobConfig.from_dict({"checkpoint": TOY, "method": "snl"})
