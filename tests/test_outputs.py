"""The output guard (fairlin_core/outputs.py) and the writers that use it: bad locations and finished results
are refused before any work starts, in the CLI, the jobs and the upload; a checkpoint pair is never half
replaced."""

import json
import subprocess
import sys

import pytest

from fairlin_core.checkpoints import load_checkpoint, save_checkpoint
from fairlin_core.checkpoints.upload import accept_upload
from fairlin_core.errors import FairLinError
from fairlin_core.jobs import JobManager, RunStore, TrainBaseConfig
from fairlin_core.outputs import check_writable, prepare_output, prepare_output_file
from conftest import REPO, TOY, run_cli, without_dac_override


def test_guard_creates_probes_and_refuses_bad_locations(tmp_path):
    assert check_writable(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # what the check created goes again: a later refusal leaves nothing
    folder = check_writable(tmp_path / "a" / "b", keep=True)
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe file is gone
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(FairLinError, match="lies under a regular file"):
        check_writable(blocker / "out")
    with pytest.raises(FairLinError, match="is a file, not a folder"):
        check_writable(blocker)
    with pytest.raises(FairLinError, match="name too long") as error:
        check_writable(tmp_path / ("n" * 100_000))
    assert len(str(error.value)) < 400  # the 100,000-character name is not echoed whole
    with pytest.raises(FairLinError, match="too long"):
        prepare_output_file(tmp_path / ("m" * 300 + ".safetensors"), [".json"])
    assert not blocker.with_name("out").exists()


def test_guard_refuses_finished_results_unless_overwrite(tmp_path):
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(FairLinError, match=r"already exists there \(model.json\).*--overwrite"):
        prepare_output(tmp_path, ["model.safetensors", "model.json"])
    assert prepare_output(tmp_path, ["model.safetensors", "model.json"], overwrite=True) == tmp_path
    (tmp_path / "accuracy.csv").write_text("")
    with pytest.raises(FairLinError, match="accuracy.csv"):
        prepare_output(tmp_path, ["*.csv"])


def test_unwritable_folder_is_refused_before_any_work(tmp_path):
    """A real read-only folder (permissions apply, also as root): train-base exits 2 with one line at once."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        proc = subprocess.run(without_dac_override(
            [sys.executable, "-m", "fairlin_core", "train-base", "--dataset", "toy2d", "--model", "mlp",
             "--epochs", "100000", "--out", str(folder / "m.safetensors")]),
            capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        folder.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "not writable" in proc.stderr
    assert "Traceback" not in proc.stderr and list(folder.iterdir()) == []


def test_train_base_refuses_an_existing_checkpoint_and_a_bad_out_before_training(capsys, tmp_path):
    out = tmp_path / "toy.safetensors"
    argv = ["train-base", "--dataset", "toy2d", "--model", "mlp", "--epochs", "20", "--out", out]
    assert run_cli(capsys, *argv)[0] == 0
    before = (out.read_bytes(), out.with_suffix(".json").read_bytes())
    code, _, err = run_cli(capsys, *argv[:-2], "--seed", "1", "--out", out)
    assert code == 2 and "already exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
    code, _, _ = run_cli(capsys, *argv[:-2], "--seed", "1", "--out", out, "--overwrite")
    assert code == 0 and json.loads(out.with_suffix(".json").read_text())["seed"] == 1
    blocker = tmp_path / "plain.txt"
    blocker.write_text("not a folder")
    code, _, err = run_cli(capsys, *argv[:-1], blocker / "m.safetensors")
    assert code == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1


def test_linearize_compare_and_audit_refuse_finished_results(capsys, tmp_path):
    lin = tmp_path / "lin"
    quick = ["--finetune-epochs", "0"]
    assert run_cli(capsys, "linearize", "--checkpoint", TOY, "--method", "random", "--budget", "8", "--out", lin,
                   *quick)[0] == 0
    weights = (lin / "model.safetensors").read_bytes()
    code, _, err = run_cli(capsys, "linearize", "--checkpoint", TOY, "--method", "random", "--budget", "4",
                           "--out", lin, *quick)
    assert code == 2 and "model.json, model.safetensors" in err and "--overwrite" in err
    assert (lin / "model.safetensors").read_bytes() == weights
    assert run_cli(capsys, "linearize", "--checkpoint", TOY, "--method", "random", "--budget", "4", "--out", lin,
                   "--overwrite", *quick)[0] == 0
    assert load_checkpoint(lin).relu_count == 4

    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "summary.csv").write_text("keep me")
    code, _, err = run_cli(capsys, "compare", "--checkpoint", TOY, "--method", "random", "--budgets", "8",
                           "--seeds", "0", "--out", tables, *quick)
    assert code == 2 and "summary.csv" in err
    code, _, err = run_cli(capsys, "audit", "--base", TOY, "--linearized", lin, "--out", tables)
    assert code == 2 and "summary.csv" in err and (tables / "summary.csv").read_text() == "keep me"


def test_a_failed_save_leaves_the_old_pair_whole(tmp_path, toy_checkpoint):
    path = save_checkpoint(tmp_path / "m.safetensors", toy_checkpoint.model, toy_checkpoint.spec, {"seed": 1})
    before = (path.read_bytes(), path.with_suffix(".json").read_bytes())
    with pytest.raises(TypeError):
        save_checkpoint(path, toy_checkpoint.model, toy_checkpoint.spec, {"seed": object()})
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no staged leftovers
    assert load_checkpoint(path).sidecar["seed"] == 1


def test_jobs_and_upload_check_their_outputs_first(tmp_path):
    blocker = tmp_path / "plain.txt"
    blocker.write_text("not a folder")
    manager = JobManager(RunStore(tmp_path / "store"), workers=1)
    try:
        with pytest.raises(FairLinError, match="under a regular file"):
            manager.submit(TrainBaseConfig("toy2d", "mlp", name="x", epochs=1, out_dir=str(blocker / "user")))
    finally:
        manager.shutdown()
    assert RunStore(tmp_path / "store").list_runs() == []  # nothing was queued
    weights = open(TOY, "rb").read()
    sidecar = open(TOY[: -len(".safetensors")] + ".json", "rb").read()
    with pytest.raises(FairLinError, match="under a regular file"):
        accept_upload("mine.safetensors", weights, sidecar, blocker / "user")
    assert accept_upload("mine.safetensors", weights, sidecar, tmp_path / "user").exists()
    with pytest.raises(FairLinError, match="already exists"):
        accept_upload("mine.safetensors", weights, sidecar, tmp_path / "user")

