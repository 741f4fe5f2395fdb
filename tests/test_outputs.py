"""The output guard (fairlin_core/outputs.py) and the writers that use it: bad locations and finished results
are refused before any work starts, in the CLI, the jobs and the upload; a checkpoint pair is never half
replaced."""

import json
import os
import subprocess
import sys
from pathlib import Path

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



def test_guard_refuses_names_that_are_not_utf8(tmp_path, capsys):
    """A non-UTF-8 byte from the command line (a surrogate after decoding) or a lone surrogate in a str is a
    clear FairLinError of the guard, in every writer; nothing is created."""
    for bad in (tmp_path / "\udcff\udcfe", tmp_path / "ok" / "\ud800x"):
        with pytest.raises(FairLinError, match="not valid UTF-8 text"):
            check_writable(bad)
    with pytest.raises(FairLinError, match=r"output name '\\udcff.safetensors' is not valid UTF-8"):
        prepare_output_file(tmp_path / "\udcff.safetensors", [".json"])
    code, out, err = run_cli(capsys, "linearize", "--checkpoint", TOY, "--method", "random", "--budget", "4",
                             "--out", tmp_path / "lin\udcff", "--finetune-epochs", "0")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "not valid UTF-8" in err
    assert list(tmp_path.iterdir()) == []


def test_default_audit_checks_its_out_before_the_grid(capsys, tmp_path, monkeypatch):
    """default-audit with a 300-character, non-UTF-8 or under-a-file --out: exit 2 with the guard's one line
    before the grid's checkpoint is loaded."""
    import fairlin_core.audits.grid as grid

    def loaded(*args):
        raise AssertionError("the grid was checked before its output")

    monkeypatch.setattr(grid, "_checked", loaded)
    (tmp_path / "plain.txt").write_text("x")
    for out, expected in ((tmp_path / ("a" * 300), "name too long"), (tmp_path / "\udcff", "not valid UTF-8"),
                          (tmp_path / "plain.txt" / "audit", "lies under a regular file")):
        code, stdout, err = run_cli(capsys, "default-audit", "--checkpoint", TOY, "--out", out)
        assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1 and expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


KILLED_WHILE_WRITING = """
import os, signal, sys
import fairlin_core.checkpoints.io as io
from fairlin_core.cli import main

def killed(state, tmp, metadata=None):  # half the weights written, then kill -9 (no cleanup can run)
    with open(tmp, "wb") as handle:
        handle.write(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)

io.save_file = killed
main(sys.argv[1:])
"""


@pytest.mark.parametrize("command", ["linearize", "train-base"])
def test_a_writer_killed_mid_write_leaves_temporaries_the_next_run_removes(command, capsys, tmp_path):
    """kill -9 of linearize / train-base while the checkpoint is staged leaves its temporary; the next run of
    the same output removes it (its writer is dead) and writes the complete pair; a live writer's stays."""
    out = tmp_path / "out"
    argv = {"linearize": ["linearize", "--checkpoint", TOY, "--method", "random", "--budget", "4",
                          "--finetune-epochs", "0", "--out", str(out)],
            "train-base": ["train-base", "--dataset", "toy2d", "--model", "mlp", "--epochs", "3",
                           "--out", str(out / "model.safetensors")]}[command]
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    leftovers = [p.name for p in out.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.safetensors.") and leftovers[0].endswith(".tmp")
    live = out / ".model.safetensors.1.abcdefgh.tmp"  # pid 1 runs: a writer still at work
    live.write_bytes(b"in progress")
    assert run_cli(capsys, *argv)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, "model.json", "model.safetensors"])
    assert load_checkpoint(out).spec.name == "mlp"


KILLED_WHILE_INSTALLING = """
import os, shutil, signal, sys
from pathlib import Path
from fairlin_core.checkpoints.upload import accept_upload

def killed(source, target):  # the validated upload half copied into place, then kill -9
    with open(target, "wb") as handle:
        handle.write(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)

shutil.copyfile = killed
toy = Path(sys.argv[1])
accept_upload("mine.safetensors", toy.read_bytes(), toy.with_suffix(".json").read_bytes(), sys.argv[2])
"""


def test_an_upload_killed_while_installing_leaves_a_temporary_the_next_upload_removes(tmp_path):
    """kill -9 of a dashboard upload while it copies the validated pair into the user folder leaves one hidden
    temporary (it used to stay there for good as .partial); the next upload of that name removes it."""
    dest = tmp_path / "user"
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_INSTALLING, TOY, str(dest)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert [p.name.startswith(".mine.") for p in dest.iterdir()] == [True]
    toy = Path(TOY)
    accept_upload("mine.safetensors", toy.read_bytes(), toy.with_suffix(".json").read_bytes(), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["mine.json", "mine.safetensors"]
    assert load_checkpoint(dest / "mine.safetensors").spec.name == "mlp"


FILE_SIZE_LIMIT = """
import resource, signal, sys
from fairlin_core.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the weights (2184 bytes) fit, the sidecar does not
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_during_overwrite_is_one_line_and_keeps_the_old_pair(capsys, tmp_path):
    """train-base --overwrite whose sidecar cannot be written (the file size limit, as on a full disk): exit 2
    with one line naming the failure; the old pair is kept byte for byte and no temporary is left."""
    out = tmp_path / "toy.safetensors"
    argv = ["train-base", "--dataset", "toy2d", "--model", "mlp", "--epochs", "40", "--out", str(out)]
    assert run_cli(capsys, *argv)[0] == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    proc = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, *argv, "--seed", "1", "--overwrite"],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "TQDM_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert "File too large" in proc.stderr and "kept unchanged" in proc.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
