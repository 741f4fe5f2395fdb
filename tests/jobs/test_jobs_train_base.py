"""Train-base jobs: a base model trained through the JobManager (same queue, progress, cancel and run store as
linearize jobs), validated before queueing, installed into <store>/user_checkpoints, listed by `runs`; and
linearize config hashes unchanged by the new kind."""

import hashlib
import json
import time
from pathlib import Path

import pytest

from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.cli import main
from fairlin_core.errors import FairLinError
from fairlin_core.limits import RUN_LIMITS
from fairlin_core.jobs import JobConfig, JobManager, TrainBaseConfig, config_from_dict, user_checkpoint_dir
from conftest import TOY, job_config



@pytest.fixture
def manager(tmp_path):
    manager = JobManager(tmp_path / "store", workers=1)
    yield manager
    manager.shutdown()


def tiny(**changes):
    return TrainBaseConfig(**{"dataset": "toy2d", "model": "mlp", "name": "toy_tiny", "epochs": 3, **changes})


def test_train_base_job_runs_to_done_installs_a_loadable_checkpoint_and_lists_in_runs(manager, tmp_path, capsys):
    run_id = manager.submit(tiny())
    assert manager.wait([run_id], timeout=120)
    status = manager.status(run_id)
    assert status.status == "done" and status.fraction == 1.0 and status.config["kind"] == "train-base"
    installed = user_checkpoint_dir(tmp_path / "store") / "toy_tiny.safetensors"
    checkpoint = load_checkpoint(installed)
    assert checkpoint.spec.name == "mlp" and checkpoint.sidecar["kind"] == "base"
    assert checkpoint.sidecar["dataset"]["name"] == "toy2d" and checkpoint.sidecar["training"]["epochs"] == 3
    run = manager.store.get_run(run_id)
    assert run.summary["checkpoint"] == str(installed)
    assert run.summary["test_accuracy"] == pytest.approx(checkpoint.sidecar["evaluation"]["overall_accuracy"])
    assert run.relu_count == checkpoint.sidecar["relu_count"] == 32
    assert set(run.tables["groups"]["split"]) == {"test"} and len(run.tables["history"]) == 3
    assert load_checkpoint(run.path / "model.safetensors").spec == checkpoint.spec
    code = main(["runs", "--store", str(tmp_path / "store"), "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["id"] for r in listed] == [run_id] and listed[0]["config"]["name"] == "toy_tiny"
    assert main(["runs", "--store", str(tmp_path / "store")]) == 0
    text = capsys.readouterr().out
    assert "train-base" in text and "toy_tiny.safetensors" in text
    assert main(["runs", "show", run_id, "--store", str(tmp_path / "store")]) == 0
    assert "train-base mlp on toy2d" in capsys.readouterr().out
    with pytest.raises(FairLinError, match="already exists"):  # the same config again: its checkpoint exists
        manager.submit(tiny())


@pytest.mark.parametrize("changes,message", [
    ({"dataset": "nope"}, "nope"), ({"model": "resnet99"}, "unknown model"),
    ({"model": "resnet18"}, "image input"), ({"epochs": 0}, "epochs"), ({"epochs": True}, "epochs"),
    ({"epochs": "3"}, "epochs"), ({"seed": -1}, "seed"), ({"name": "../evil"}, "not allowed"),
    ({"name": ".hidden"}, "not allowed"), ({"name": "a" * 101}, "not allowed"),
    ({"model_options": {"stem_stride": 2}}, "does not take"), ({"model_options": {"width": 0}}, "positive"),
    ({"dataset": {"name": "toy2d", "colour": 1}}, "unknown dataset key")])
def test_invalid_train_base_configs_are_refused_at_submit(manager, changes, message):
    with pytest.raises(FairLinError, match=message):
        manager.submit(tiny(**changes))
    assert manager.jobs() == [] and manager.store.list_runs() == []


def test_existing_checkpoint_and_unknown_keys_are_refused(manager, tmp_path):
    user = user_checkpoint_dir(tmp_path / "store")
    user.mkdir(parents=True)
    (user / "taken.safetensors").write_bytes(b"")
    with pytest.raises(FairLinError, match="already exists"):
        manager.submit(tiny(name="taken"))
    with pytest.raises(FairLinError, match="unknown train-base config key"):
        manager.submit({"kind": "train-base", "dataset": "toy2d", "model": "mlp", "budget": 3})
    with pytest.raises(FairLinError, match="unknown job kind"):
        config_from_dict({"kind": "paint", "dataset": "toy2d"})


def test_cancel_leaves_the_run_cancelled_and_no_checkpoint(manager, tmp_path):
    run_id = manager.submit(tiny(name="never", epochs=RUN_LIMITS["epochs"]))  # the longest run allowed
    deadline = time.monotonic() + 60
    while manager.status(run_id).status != "running" or manager.status(run_id).fraction == 0.0:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.01)
    assert manager.cancel(run_id)
    assert manager.wait([run_id], timeout=60)
    assert manager.status(run_id).status == "cancelled"
    assert manager.store.row(run_id)["status"] == "cancelled"
    user = user_checkpoint_dir(tmp_path / "store")
    assert not user.exists() or not any(user.iterdir())
    assert not (manager.store.runs_dir / run_id).exists() and not any(manager.store.staging_root.iterdir())


def test_train_base_hash_ignores_spelled_out_defaults_and_data_root(tmp_path):
    out = str(tmp_path / "user")
    plain = tiny(out_dir=out).canonical_hash()
    assert tiny(out_dir=out, model_options={"width": 16, "depth": 2}).canonical_hash() == plain
    assert tiny(out_dir=out, data_root="/elsewhere").canonical_hash() == plain
    assert tiny(out_dir=out, dataset={"name": "toy2d", "seed": 0}).canonical_hash() == plain
    assert TrainBaseConfig.from_dict(tiny(out_dir=out).to_dict()).canonical_hash() == plain
    assert config_from_dict(tiny(out_dir=out).to_dict()) == tiny(out_dir=out)
    different = [tiny(out_dir=out, seed=1), tiny(out_dir=out, name="other"), tiny(out_dir=out, epochs=4),
                 tiny(out_dir=str(tmp_path / "elsewhere")), tiny(out_dir=out, model_options={"width": 8})]
    assert len({plain, *(c.canonical_hash() for c in different)}) == len(different) + 1


def _masked_hash(config: JobConfig) -> str:
    """The canonical hash with the machine-specific parts (checkpoint path and its content digest) masked."""
    canonical = {**config.canonical(), "checkpoint": "TOY", "checkpoint_sha256": "SHA"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":"),
                                     allow_nan=False).encode()).hexdigest()


# Hash format 2 (issue 17: mitigation method/normalize/lambda_max/eta and finetune select/select_tolerance
# joined the config, so every linearize hash changed on purpose). Format 1 pinned 7fec96d2... and bffa88f9...
# (computed before train-base jobs existed, commit e018fff); these pins keep format 2 from drifting silently.
@pytest.mark.parametrize("config,expected", [
    (job_config(TOY, "random", 0.5, finetune={"epochs": 0}),
     "0ffc0e1d0414906478dfe4dd1ace065c0fd88d0b0e677d1dc687d27f13167716"),
    (job_config(TOY, "snl", "10%", seed=3, snl={"epochs": 7}, finetune={"epochs": 2, "lr": 1e-3},
               mitigation={"mu": 0.01}, diagnostics=["accuracy"]),
     "e3e571147409e41ef6fb92b2e005c94e587020d804e5ee18804d8bd79222b0ac")])
def test_linearize_config_hashes_are_pinned(config, expected):
    assert _masked_hash(config) == expected
    canonical = json.dumps(config.canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert config.canonical_hash() == hashlib.sha256(canonical.encode()).hexdigest()
    assert "kind" not in config.to_dict() and "kind" not in config.canonical()
    assert config_from_dict(config.to_dict()) == config
    assert config_from_dict({**config.to_dict(), "kind": "linearize"}).canonical_hash() == config.canonical_hash()
    assert Path(config.validate().checkpoint).name == "toy2d_mlp.safetensors"
