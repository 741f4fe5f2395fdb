"""Job configs: canonical hashing (defaults, budget spellings, data root, checkpoint identity) and
refusal of invalid configs with a message saying what was expected."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.errors import FairLinError
from fairlin_core.finetune import FinetuneConfig, MitigationConfig
from fairlin_core.jobs import JobConfig, JobManager, RunStore, config_from_dict
from fairlin_core.jobs.config import checkpoint_digest
from fairlin_core.linearizers import LinearizeRecipe
from conftest import TOY, copy_checkpoint



def config(**changes):
    return JobConfig.from_dict({"checkpoint": TOY, "method": "snl", "budget": 0.5, **changes})


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
    assert old.validate().recipe.mitigation == MitigationConfig(method="lagrangian", mu=0.5, tolerance=0.0)
    assert old.validate().to_dict()["mitigation"] == {"method": "lagrangian", "mu": 0.5, "tolerance": 0.0,
                                                      "normalize": False, "lambda_max": None, "eta": 0.01}


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


# Run hashes of stored runs must not move (issue 24): each config's canonical_hash as recorded on the code before
# LinearizeRecipe, computed with the checkpoint's resolved path and content digest replaced by placeholders (both
# depend on where the repository lives; the rest of the canonical form is pinned whole).
PINNED_HASHES = {
    "plain": ({"method": "snl", "budget": 0.5},
              "ed110aa30e7acb3f264829805192dd31daa72f33dab3c985cf8e746b2493495b"),
    "lagrangian, sparse": ({"method": "random", "budget": 8, "seed": 1, "mitigation": {"mu": 0.05}},
                           "0c00e0828659df4ebaa73f611b5a06772840c65974d087674a54c235d5b6bb69"),
    "lagrangian, every option": ({"method": "snl", "budget": "50%", "mitigation": {
        "method": "lagrangian", "mu": 0.02, "tolerance": 0.01, "normalize": True, "lambda_max": 5}},
        "c46d218dcc6fb7357c227edb4c99779ad0f149ecc6e8e2037d7c6fe4ad732d93"),
    "groupdro": ({"method": "random", "budget": "25%", "mitigation": "groupdro",
                  "finetune": {"epochs": 3, "select": "worst-group"}},
                 "ac8740941a948b81a975782a231b69efc9866c72b8bb827a31fa252a5818f00c"),
    "bf16": ({"method": "snl", "budget": 16, "precision": "bf16", "snl": {"epochs": 7, "lam": 0.01}},
             "272089cee763cef04215374c1a71b01bd826e63e7547611574283cae87c01152"),
    "percent budget": ({"method": "random", "budget": " 12.5 %"},
                       "faaec0215ec7b8c2f86851e39e653e9058adec6d6165c63eac32d083c2e3f4b1"),
    "dataset override": ({"method": "random", "budget": 4,
                          "dataset": {"name": "toy2d", "options": {"shape": "paper"}, "seed": 3}},
                         "a787f81e4b57c7814db266b55dcbd03461d5e12f4ecaa39acaac23169231d72e"),
    "diagnostics": ({"method": "random", "budget": 0.25, "diagnostics": "grad,accuracy",
                     "finetune": {"ce_weight": 1, "epochs": 2}},
                    "8981005959d159b225656acc0a351ada88a5a36089e30a1302df73632ae560c0"),
}


def _canonical_text(canonical):
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize("name", PINNED_HASHES)
def test_run_hashes_of_stored_runs_stay_stable(name):
    changes, pinned = PINNED_HASHES[name]
    config = JobConfig.from_dict({"checkpoint": TOY, **changes})
    canonical = config.canonical()
    assert canonical["checkpoint"] == str(Path(TOY).resolve())
    assert canonical["checkpoint_sha256"] == checkpoint_digest(Path(TOY).resolve())
    assert config.canonical_hash() == hashlib.sha256(_canonical_text(canonical).encode()).hexdigest()
    placeholders = {**canonical, "checkpoint": "<checkpoint>", "checkpoint_sha256": "<sha256>"}
    assert hashlib.sha256(_canonical_text(placeholders).encode()).hexdigest() == pinned


# A run as the code before LinearizeRecipe stored it: its validated config (what the store keeps) and its canonical
# form (what its hash covers), both as that code wrote them, with the checkpoint's path and digest left open.
OLD_RUN_CONFIG = {
    "budget": "25%", "checkpoint": "<checkpoint>", "data_root": None, "dataset": None, "diagnostics": [],
    "finetune": {"batch_size": 64, "ce_weight": 1.0, "epochs": 0, "kd_weight": 1.0, "lr": 0.001, "momentum": 0.9,
                 "select": "auto", "select_tolerance": 0.02, "temperature": 4.0, "weight_decay": 0.0005},
    "method": "random", "mitigation": {"eta": 0.01, "lambda_max": None, "method": "lagrangian", "mu": 0.05,
                                       "normalize": False, "tolerance": 0.0},
    "precision": "fp32", "seed": 0,
    "snl": {"batch_size": 64, "epochs": 100, "lam": 0.003, "lam_growth": 1.1, "lam_min_progress": 0.1,
            "lam_patience_epochs": 5, "lr": 0.001, "mask_lr": 0.02, "temperature": 4.0, "threshold": 0.01}}
OLD_RUN_CANONICAL = {**{k: v for k, v in OLD_RUN_CONFIG.items() if k not in ("data_root", "precision")},
                     "budget": 0.25, "checkpoint_sha256": "<sha256>", "hash_format": 2}


def test_a_store_written_before_recipes_loads_and_its_runs_are_reused(tmp_path):
    weights = copy_checkpoint(tmp_path / "base")
    path = str(weights.resolve())
    stored = {**OLD_RUN_CONFIG, "checkpoint": path}
    old_hash = hashlib.sha256(_canonical_text({**OLD_RUN_CANONICAL, "checkpoint": path,
                                               "checkpoint_sha256": checkpoint_digest(weights)}).encode()).hexdigest()
    store = RunStore(tmp_path / "store")
    claim = store.claim(old_hash, stored)  # what a submit of that code wrote, then its run finished
    assert store.mark_running(claim.id)
    staging = store.staging_dir(claim.id)
    (staging / "summary.json").write_text("{}")
    store.publish(claim.id, staging, {"relu_count": 8, "overall_accuracy": 0.5, "worst_group_accuracy": 0.25})

    reopened = RunStore(store.root)
    loaded = config_from_dict(reopened.row(claim.id)["config"])
    assert loaded.canonical_hash() == old_hash and loaded.to_dict() == stored
    manager = JobManager(reopened, workers=1)
    try:
        again = {"checkpoint": path, "method": "random", "budget": "25%", "finetune": {"epochs": 0},
                 "mitigation": {"mu": 0.05}}
        assert manager.submit(again) == claim.id
        assert manager.submit(JobConfig.from_dict(stored)) == claim.id
    finally:
        manager.shutdown()
    assert [(r["id"], r["status"]) for r in reopened.list_runs()] == [(claim.id, "done")]


def test_a_job_config_is_a_recipe_on_a_checkpoint_with_one_flat_json_form():
    recipe = LinearizeRecipe(method="random", budget="25%", seed=2, finetune=FinetuneConfig(epochs=0, ce_weight=1),
                             mitigation=MitigationConfig(method="lagrangian", mu=1))  # ints where floats are meant
    typed = JobConfig(TOY, recipe)
    flat = typed.to_dict()
    assert set(flat) == {"checkpoint", "method", "budget", "seed", "dataset", "snl", "finetune", "mitigation",
                         "diagnostics", "data_root", "precision"}
    assert flat["mitigation"]["method"] == "lagrangian" and flat["finetune"]["epochs"] == 0
    again = JobConfig.from_dict(json.loads(json.dumps(flat)))
    assert again.recipe == recipe.validate() and again.to_dict() == flat
    spelled = config(method="random", budget=0.25, seed=2, finetune={"epochs": 0}, mitigation={"mu": 1.0})
    assert typed.canonical_hash() == again.canonical_hash() == spelled.canonical_hash()
    assert typed.validate().recipe.mitigation.mu == 1.0 and isinstance(typed.validate().recipe.mitigation.mu, float)
    with pytest.raises(FairLinError, match="recipe must be a LinearizeRecipe"):
        JobConfig(TOY, {"method": "random"}).validate()
