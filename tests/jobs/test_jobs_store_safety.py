"""Nothing finished is lost: a damaged index is refused and rebuilt from the run folders (nothing recomputed),
a read-only store lists without writing a byte, and a sweep whose peer process died takes over its runs
(real files, real processes)."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from fairlin_core.jobs import RunStore
from fairlin_core.jobs.manager import _live_managers
from conftest import REPO, TOY, job_config, run_cli, snapshot, without_dac_override

SWEEP = ["sweep", "--checkpoint", TOY, "--methods", "random", "--budgets", "8,4", "--seeds", "0",
         "--finetune-epochs", "0"]


def damage_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(b""),
    damage_truncated,
    lambda path: path.write_bytes(b"not a database at all " * 200),
], ids=["zero-byte", "truncated", "garbage"])
def test_a_damaged_index_is_refused_then_rebuilt_and_nothing_is_recomputed(capsys, tmp_path, damage):
    store = tmp_path / "store"
    assert run_cli(capsys, *SWEEP, "--store", store)[0] == 0
    folders = {p.name: snapshot(p) for p in (store / "runs").iterdir()}
    damage(store / "runs.sqlite")
    for argv in (["runs", "--json"], SWEEP):
        code, out, err = run_cli(capsys, *argv, "--store", store)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert "runs --rebuild-index" in err and "2 run folder(s)" in err
    assert {p.name: snapshot(p) for p in (store / "runs").iterdir()} == folders  # nothing replaced

    code, out, _ = run_cli(capsys, "runs", "--rebuild-index", "--store", store, "--json")
    report = json.loads(out)
    assert code == 0 and report["done"] == 2 and report["damaged"] == [] and report["unindexed"] == []
    code, out, _ = run_cli(capsys, *SWEEP, "--store", store, "--json")
    assert code == 0 and json.loads(out)["counts"] == {"done": 2}
    assert {p.name: snapshot(p) for p in (store / "runs").iterdir()} == folders  # found done, not recomputed


def test_rebuild_reports_damaged_and_unreadable_folders_and_does_not_index_them_done(capsys, tmp_path):
    store = tmp_path / "store"
    assert run_cli(capsys, *SWEEP, "--seeds", "0,1", "--store", store)[0] == 0
    first, second, third, _ = sorted((store / "runs").iterdir())
    (first / "groups.csv").write_text("tampered")
    (second / "summary.json").write_text("{")
    (third / "manifest.json").unlink()
    (store / "runs.sqlite").write_bytes(b"")
    code, out, _ = run_cli(capsys, "runs", "--rebuild-index", "--store", store, "--json")
    report = json.loads(out)
    assert code == 0 and report["done"] == 1
    assert sorted(d["id"] for d in report["damaged"]) == sorted([first.name, third.name])
    assert [u["id"] for u in report["unindexed"]] == [second.name] and (store / "unindexed" / second.name).is_dir()
    statuses = {r["id"]: r["status"] for r in RunStore(store).list_runs()}
    assert statuses[first.name] == statuses[third.name] == "damaged" and second.name not in statuses
    assert report["old_index"] and os.path.exists(report["old_index"])  # the damaged index is kept, not deleted


def test_a_read_only_store_lists_without_writing_and_writers_refuse_in_one_line(capsys, tmp_path):
    store = tmp_path / "store"
    assert run_cli(capsys, *SWEEP, "--store", store)[0] == 0
    run_id = RunStore(store).list_runs()[0]["id"]
    before = snapshot(store)
    assert run_cli(capsys, "runs", "--store", store, "--json")[0] == 0  # in this process too: nothing written
    assert run_cli(capsys, "runs", "show", run_id, "--store", store, "--json")[0] == 0
    assert snapshot(store) == before and not list(store.glob("runs.sqlite-*"))

    paths = [store, *store.rglob("*")]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        cli = [sys.executable, "-m", "fairlin_core"]
        listed = subprocess.run(without_dac_override([*cli, "runs", "--store", str(store), "--json"]),
                                capture_output=True, text=True, cwd=REPO, timeout=300)
        shown = subprocess.run(without_dac_override([*cli, "runs", "show", run_id, "--store", str(store), "--json"]),
                               capture_output=True, text=True, cwd=REPO, timeout=300)
        swept = subprocess.run(without_dac_override([*cli, *map(str, SWEEP), "--store", str(store)]),
                               capture_output=True, text=True, cwd=REPO, timeout=300)
    finally:
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["done", "done"]
    assert shown.returncode == 0 and json.loads(shown.stdout)["tables"]["groups"], shown.stderr
    assert swept.returncode == 2 and len(swept.stderr.strip().splitlines()) == 1 and "not writable" in swept.stderr
    assert snapshot(store) == before and not list(store.glob("runs.sqlite-*"))


PEER = """
import sys, time
from fairlin_core.jobs import JobManager
store, toy = sys.argv[1:]
manager = JobManager(store, workers=1)
manager.submit({"checkpoint": toy, "method": "random", "budget": 8, "seed": 0, "finetune": {"epochs": 30}})
time.sleep(600)
"""


def test_a_sweep_takes_over_the_runs_of_a_peer_that_died(capsys, tmp_path):
    """A peer process runs a shared sweep's run; this sweep waits for it, the peer is killed (-9), and this
    sweep runs the peer's run itself instead of giving up."""
    root = tmp_path / "store"
    peer = subprocess.Popen([sys.executable, "-c", PEER, str(root), TOY], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not (root.joinpath("runs.sqlite").exists() and RunStore(root, read_only=True).list_runs("running")):
            assert time.monotonic() < deadline and peer.poll() is None, "the peer never started its run"
            time.sleep(0.05)

        def kill_peer_once_this_sweep_follows():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                mine = [m for m in list(_live_managers) if m.store.root == root]
                if mine and mine[0].jobs():  # our own run (seed 1, submitted last) is queued: the sweep follows
                    break
                time.sleep(0.02)
            os.kill(peer.pid, signal.SIGKILL)  # left a zombie (not reaped) on purpose: a dead owner all the same

        killer = threading.Thread(target=kill_peer_once_this_sweep_follows, daemon=True)
        killer.start()
        code, out, err = run_cli(capsys, "sweep", "--checkpoint", TOY, "--methods", "random", "--budgets", "8",
                                 "--seeds", "0,1", "--finetune-epochs", "30", "--store", root, "--json")
        killer.join()
    finally:
        if peer.poll() is None:
            os.kill(peer.pid, signal.SIGKILL)
        peer.wait()
    assert peer.returncode == -signal.SIGKILL
    assert code == 0, err
    result = json.loads(out)
    assert result["counts"] == {"done": 2}
    assert [r["config"]["seed"] for r in result["runs"]] == [0, 1]
    assert stat.S_ISDIR(os.stat(root / "runs" / result["runs"][0]["id"]).st_mode)  # the peer's run, finished here


MAGIC = bytes.fromhex("d9d505f920a163d7")  # a rollback journal starts with it once synced: a commit is under way


def _journal_is_hot(journal):
    """Whether ``journal`` holds a synced header: a commit had begun writing the index (SQLite must roll it back)."""
    try:
        with open(journal, "rb") as handle:
            return handle.read(8) == MAGIC
    except FileNotFoundError:
        return False


def _kill_at_a_commit(command, store):
    """Run ``command`` (a sweep) and SIGKILL it at the first commit of the index after a run finished (its
    journal synced, the index not yet final); True when the kill left the journal hot."""
    journal = store / "runs.sqlite-journal"
    sweep = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = store / "runs"
    try:
        while not (runs.is_dir() and any(runs.iterdir())):
            if sweep.poll() is not None:
                return False
            time.sleep(0.01)
        while sweep.poll() is None:
            if _journal_is_hot(journal):
                os.kill(sweep.pid, signal.SIGKILL)
                break
    finally:
        if sweep.poll() is None:
            sweep.kill()
        sweep.wait()
    return sweep.returncode == -signal.SIGKILL and _journal_is_hot(journal)


def test_a_sweep_killed_while_it_commits_leaves_a_hot_journal_and_the_next_sweep_finishes_every_run_once(
        capsys, tmp_path):
    """kill -9 of a real sweep process in the middle of a commit (its rollback journal synced); the next `runs`
    and `sweep` let SQLite roll the journal back: every run ends done, each run folder once, none lost."""
    argv = [*SWEEP, "--seeds", "0,1,2"]  # 2 budgets x 3 seeds
    for attempt in range(3):  # a commit lasts milliseconds: the kill may land just after one (then run again)
        store = tmp_path / f"store{attempt}"
        if _kill_at_a_commit([sys.executable, "-m", "fairlin_core", *argv, "--store", str(store)], store):
            break
    else:
        pytest.skip("no kill landed inside a commit in 3 sweeps (a file system that commits in microseconds)")
    code, out, err = run_cli(capsys, "runs", "--json", "--store", store)  # it can write: SQLite rolls back
    assert code == 0 and len(json.loads(out)) == 6, err
    assert not (store / "runs.sqlite-journal").exists()
    code, out, err = run_cli(capsys, *argv, "--store", store, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["counts"] == {"done": 6}
    ids = [r["id"] for r in result["runs"]]
    assert len(set(ids)) == 6 and sorted(p.name for p in (store / "runs").iterdir()) == sorted(ids)
    assert not any((store / "staging").iterdir())
    assert [r["id"] for r in RunStore(store, read_only=True).list_runs()] == ids


HOT = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA cache_size = 1")  # a tiny cache spills the change into the index: the journal is synced (hot)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE runs SET status = 'failed', error = hex(randomblob(20000))")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_hot_journal_in_a_read_only_store_is_refused_in_one_line_and_a_writer_rolls_it_back(capsys, tmp_path):
    store = tmp_path / "store"
    assert run_cli(capsys, *SWEEP, "--store", store)[0] == 0
    before = RunStore(store, read_only=True).list_runs()
    killed = subprocess.run([sys.executable, "-c", HOT, str(store / "runs.sqlite")])
    assert killed.returncode == -signal.SIGKILL and _journal_is_hot(store / "runs.sqlite-journal")
    paths = [store, *store.rglob("*")]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        listed = subprocess.run(without_dac_override([sys.executable, "-m", "fairlin_core", "runs", "--store",
                                                      str(store), "--json"]),
                                capture_output=True, text=True, cwd=REPO, timeout=300)
    finally:
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert listed.returncode == 2 and listed.stdout == "", listed.stderr
    lines = listed.stderr.strip().splitlines()
    assert len(lines) == 1 and "killed process left unfinished" in lines[0] and "Traceback" not in listed.stderr
    assert _journal_is_hot(store / "runs.sqlite-journal")  # nothing written
    code, out, err = run_cli(capsys, "runs", "--store", store, "--json")  # writable: SQLite rolls it back
    assert code == 0 and json.loads(out) == before, err
    assert not (store / "runs.sqlite-journal").exists()


def test_listing_and_showing_agree_that_the_runs_of_a_dead_process_are_interrupted(capsys, tmp_path):
    root = tmp_path / "store"
    config = job_config(TOY, "random", 8)
    store = RunStore(root)
    run_id = store.claim(config.canonical_hash(), config.to_dict()).id
    store.mark_running(run_id)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = f"{socket.gethostname()}:{gone.stdout.strip()}:0"  # a process that ended: its runs were left running
    store._db().execute("UPDATE runs SET owner = ?", (owner,))
    code, out, _ = run_cli(capsys, "runs", "--store", root, "--json")
    assert code == 0 and [r["status"] for r in json.loads(out)] == ["interrupted"]
    for status, expected in (("interrupted", [run_id]), ("running", []), ("queued,running", [])):
        code, out, _ = run_cli(capsys, "runs", "--store", root, "--json", "--status", status)
        assert code == 0 and [r["id"] for r in json.loads(out)] == expected
    code, out, _ = run_cli(capsys, "runs", "show", run_id, "--store", root, "--json")
    assert code == 0 and json.loads(out)["status"] == "interrupted"
    assert RunStore(root, read_only=True).runs_table()["status"].tolist() == ["interrupted"]
    assert [r["status"] for r in RunStore(root).list_runs("running")] == []  # a writer marks it so
    assert [r["status"] for r in store.list_runs()] == ["interrupted"]
