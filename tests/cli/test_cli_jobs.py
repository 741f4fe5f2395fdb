"""CLI `sweep` and `runs`: JSON shapes, one-line errors, and a kill -9 in the middle of a job followed by
reopen, requeue and a resumed sweep (real processes, real files)."""

import _thread
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fairlin_core.jobs import JobManager, RunStore
from fairlin_core.jobs.store import LIST_COLUMNS
from conftest import REPO, TOY, run_cli


SWEEP = ["sweep", "--checkpoint", TOY, "--methods", "random", "--budgets", "0.5,8", "--seeds", "0,1",
         "--finetune-epochs", "0"]


def test_sweep_and_runs_json_shapes(capsys, tmp_path):
    store = tmp_path / "store"
    code, out, _ = run_cli(capsys, *SWEEP, "--store", store, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["store"] == str(store) and summary["counts"] == {"done": 4}
    assert [set(r) for r in summary["runs"]] == [{*LIST_COLUMNS, "error"}] * 4
    assert [(r["config"]["budget"], r["config"]["seed"], r["relu_count"]) for r in summary["runs"]] == [
        (0.5, 0, 16), (0.5, 1, 16), (8, 0, 8), (8, 1, 8)]

    code, out, _ = run_cli(capsys, "runs", "--store", store, "--json")
    runs = json.loads(out)
    assert code == 0 and [tuple(r) for r in runs] == [LIST_COLUMNS] * 4
    assert {r["id"] for r in runs} == {r["id"] for r in summary["runs"]}
    assert all(r["status"] == "done" and 0 <= r["worst_group_accuracy"] <= r["overall_accuracy"] + 1e-9
               for r in runs)
    code, out, _ = run_cli(capsys, "runs", "--store", store, "--status", "failed,cancelled", "--json")
    assert json.loads(out) == []

    run_id = runs[0]["id"]
    code, out, _ = run_cli(capsys, "runs", "show", run_id[:6], "--store", store, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == run_id and shown["summary"]["config_hash"].startswith(run_id)
    assert set(shown["tables"]) == {"groups", "history"}
    assert [g["group"] for g in shown["tables"]["groups"]] == ["majority", "minority"]
    assert Path(shown["path"], "model.safetensors").exists()

    code, out, _ = run_cli(capsys, *SWEEP, "--store", store, "--json")  # all done: nothing recomputed
    assert [r["finished"] for r in json.loads(out)["runs"]] == [r["finished"] for r in summary["runs"]]


def test_sweep_precision_is_part_of_the_run_config(capsys, tmp_path):
    """--precision bf16 travels in the job config (its own run and hash); a CPU run is fp32 whatever is asked,
    so its weights equal the fp32 run's."""
    one = ["sweep", "--checkpoint", TOY, "--methods", "random", "--budgets", "8", "--finetune-epochs", "1",
           "--store", tmp_path, "--json"]
    runs = {}
    for precision in ("fp32", "bf16"):
        code, out, _ = run_cli(capsys, *one, "--precision", precision)
        assert code == 0
        runs[precision], = json.loads(out)["runs"]
    assert runs["bf16"]["config"]["precision"] == "bf16" and runs["fp32"]["config"]["precision"] == "fp32"
    assert runs["bf16"]["id"] != runs["fp32"]["id"]
    store = RunStore(tmp_path)
    weights = [(store.get_run(runs[p]["id"]).path / "model.safetensors").read_bytes() for p in ("fp32", "bf16")]
    assert weights[0] == weights[1]


@pytest.mark.parametrize("argv,message", [
    (["sweep", "--checkpoint", TOY, "--methods", "snl,magic", "--budgets", "0.5"], "unknown method 'magic'"),
    (["sweep", "--checkpoint", TOY, "--budgets", "0.5,1000"], "above the base model's 32 ReLUs"),
    (["sweep", "--checkpoint", TOY, "--budgets", "0.5", "--seeds", "a"], "--seeds expects"),
    (["sweep", "--checkpoint", TOY, "--budgets", "0.5", "--diagnostics", "vibes"], "unknown diagnostic"),
    (["sweep", "--checkpoint", "/no/model.safetensors", "--budgets", "0.5"], "not found"),
    (["runs", "show", "0123456789abcdef"], "does not exist"),
    (["runs", "--status", "finished"], "unknown status"),
])
def test_bad_input_exits_2_with_one_line_and_queues_nothing(capsys, tmp_path, argv, message):
    code, out, err = run_cli(capsys, *argv, "--store", tmp_path / "store")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert RunStore(tmp_path / "store").list_runs() == []


CRASHING = """
import sys, time
from fairlin_core.jobs import JobManager
store, toy = sys.argv[1:]
manager = JobManager(store, workers=1)
manager.submit({"checkpoint": toy, "method": "random", "budget": 0.5, "seed": 0, "finetune": {"epochs": 0}})
manager.submit({"checkpoint": toy, "method": "snl", "budget": 1, "snl": {"epochs": 10}, "finetune": {"epochs": 0}})
manager.submit({"checkpoint": toy, "method": "random", "budget": 0.5, "seed": 1, "finetune": {"epochs": 0}})
time.sleep(600)
"""


def wait_for_statuses(root, wanted, proc, timeout=60.0):
    """Poll the store until its runs have the ``wanted`` statuses (in creation order)."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline and proc.poll() is None, "the job process never ran its jobs"
        if root.joinpath("runs.sqlite").exists():
            if [r["status"] for r in RunStore(root).list_runs()][:len(wanted)] == wanted:
                return
        time.sleep(0.02)


def test_ctrl_c_stops_a_sweep_cleanly(capsys, tmp_path):
    """Ctrl-C (SIGINT's KeyboardInterrupt in the main thread) while a job runs: exit 130, the running and
    the queued run are left interrupted with nothing half-written."""
    root = tmp_path / "store"
    argv = ["sweep", "--checkpoint", TOY, "--methods", "random,snl", "--budgets", "1", "--seeds", "0,1",
            "--snl-epochs", "5000", "--finetune-epochs", "0", "--store", root]

    def interrupt_when_running():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if root.joinpath("runs.sqlite").exists() and "snl" in [
                    r["config"]["method"] for r in RunStore(root).list_runs("running")]:
                _thread.interrupt_main()
                return
            time.sleep(0.02)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    code, _, err = run_cli(capsys, *argv)
    assert code == 130 and err.strip().splitlines()[-1] == "error: interrupted"
    store = RunStore(root)
    assert [r["status"] for r in store.list_runs()] == ["done", "done", "interrupted", "interrupted"]
    stopped = [r["id"] for r in store.list_runs("interrupted")]
    assert all(not (store.runs_dir / run_id).exists() for run_id in stopped)
    assert list(store.staging_root.iterdir()) == []
    assert "shut down" in store.row(stopped[-1])["error"]


def test_kill_9_mid_job_then_reopen_requeue_and_resume(capsys, tmp_path):
    root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", CRASHING, str(root), TOY], cwd=REPO)
    try:
        wait_for_statuses(root, ["done", "running"], proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert list((root / "staging").iterdir())  # the killed job's half-written folder

    store = RunStore(root)
    done, killed, queued = store.list_runs()
    assert (done["status"], killed["status"], queued["status"]) == ("done", "interrupted", "interrupted")
    assert list(store.staging_root.iterdir()) == []
    assert not (store.runs_dir / killed["id"]).exists()
    finished = store.get_run(done["id"])
    assert finished.status == "done" and len(finished.tables["groups"]) == 2

    manager = JobManager(store, workers=1)
    try:
        assert manager.requeue(killed["id"]) == killed["id"]
        assert manager.wait([killed["id"]], timeout=60)
    finally:
        manager.shutdown()
    resumed = store.get_run(killed["id"])
    assert resumed.status == "done" and resumed.relu_count == 1 and resumed.tables["history"]["epoch"].max() == 10

    code, out, _ = run_cli(capsys, "sweep", "--checkpoint", TOY, "--methods", "random", "--budgets", "0.5",
                           "--seeds", "0,1", "--finetune-epochs", "0", "--store", root, "--json")
    runs = json.loads(out)["runs"]
    assert code == 0 and [r["id"] for r in runs] == [done["id"], queued["id"]]
    assert [r["status"] for r in runs] == ["done", "done"]
    assert runs[0]["finished"] == done["finished"]  # skipped, not recomputed
