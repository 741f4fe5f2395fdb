"""A local Ray instance started by FairLin (no address): every socket of every process it starts listens on
127.0.0.1 (Ray has no authentication: whoever reaches a port can run code); and a sweep whose Ray instance is
killed under it (its raylet, SIGKILL) ends with one line, its runs interrupted, and resumes."""

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairlin_core.jobs import RunStore
from fairlin_core.jobs.ray_executor import ADDRESS_ENV, RaySession
from conftest import REPO, TOY, run_cli

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")


def _listening(process):
    """(ip, port) of every TCP socket ``process`` listens on ([] once it is gone)."""
    try:
        return [c.laddr[:2] for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.NoSuchProcess:
        return []


def _loopback(ip):
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # ::ffff:127.0.0.1 is loopback too


def test_a_local_ray_instance_listens_on_loopback_only():
    assert not ray.is_initialized()
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    own = set(_listening(me))
    session = RaySession()
    try:
        assert session.owned
        assert ray.get(session.board.snapshot.remote(["x"]))["x"]["attempts"] == []  # an actor's worker is up
        ray.get(ray.remote(lambda: 1).remote())  # and a task's
        started = [p for p in me.children(recursive=True) if p.pid not in before]
        sockets = {f"driver {ip}:{port}": ip for ip, port in set(_listening(me)) - own}
        for process in started:
            sockets.update({f"{process.name()} ({process.pid}) {ip}:{port}": ip for ip, port in _listening(process)})
        names = {process.name() for process in started if _listening(process)}
    finally:
        session.close()
    assert {"gcs_server", "raylet"} <= names and len(sockets) >= 6, sockets  # Ray's servers were all looked at
    exposed = sorted(where for where, ip in sockets.items() if not _loopback(ip))
    assert exposed == [], exposed
    assert not ray.is_initialized()


@pytest.mark.slow
def test_a_killed_raylet_ends_the_sweep_in_one_line_with_its_runs_interrupted_and_a_rerun_resumes_them(
        capsys, tmp_path):
    """kill -9 of the raylet of the local Ray instance a sweep started, while a run runs: either Ray ends its
    driver first (exit 1, after printing its own log lines) or the driver finds Ray gone; either way the sweep
    exits 2 with one line, `runs --json` and `runs show` agree on every run, none is left queued or running, and
    the same sweep resumes the unfinished ones."""
    store = tmp_path / "store"
    sweep = ["sweep", "--checkpoint", TOY, "--methods", "snl", "--budgets", "1,2", "--snl-epochs", "20",
             "--finetune-epochs", "0", "--store", str(store), "--json"]
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", ADDRESS_ENV)}
    driver = subprocess.Popen([sys.executable, "-m", "fairlin_core", *sweep, "--executor", "ray"], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    processes = []
    try:
        deadline = time.monotonic() + 240
        while not (store.joinpath("runs.sqlite").exists()
                   and RunStore(store, read_only=True).list_runs("running")):
            if driver.poll() is not None:
                pytest.fail(f"the sweep ended before a run ran: {driver.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "no run started on Ray"
            processes = psutil.Process(driver.pid).children(recursive=True)
            time.sleep(0.1)
        raylets = [p for p in psutil.Process(driver.pid).children(recursive=True) if p.name() == "raylet"]
        assert len(raylets) == 1
        raylets[0].kill()
        out, err = driver.communicate(timeout=240)
    finally:
        for process in processes:
            if process.is_running():
                process.kill()
        psutil.wait_procs(processes, timeout=60)
    lines = [line for line in err.split(b"\n") if line.strip()]  # the progress bar redraws one line (\r)
    assert driver.returncode == 2 and len(lines) == 1, err.decode()[-3000:]
    message = lines[0].rsplit(b"\r", 1)[-1].decode()
    assert message.startswith("error: ") and "Traceback" not in message and "[state-dump]" not in err.decode()
    assert b"(raylet)" not in out and b".cc:" not in err  # Ray's own lines stay out of the command's output
    if "Ray's messages: " in message:  # Ray ended the driver (else it reported Ray lost itself: no log kept)
        log = Path(message.rsplit("Ray's messages: ", 1)[1].rstrip(")"))
        assert log.stat().st_size > 0  # they went to the log the line names
        log.unlink()
    else:
        assert "Ray was lost" in message, message
    code, listed, _ = run_cli(capsys, "runs", "--store", store, "--json")
    statuses = {r["id"]: r["status"] for r in json.loads(listed)}
    assert len(statuses) == 2 and set(statuses.values()) <= {"done", "interrupted"} and \
        "interrupted" in statuses.values(), statuses
    for run_id, status in statuses.items():
        assert json.loads(run_cli(capsys, "runs", "show", run_id, "--store", store, "--json")[1])["status"] == status
    finished = {r["id"]: r["finished"] for r in json.loads(listed) if r["status"] == "done"}
    code, out, err = run_cli(capsys, *sweep)  # the same sweep, on this process's threads
    assert code == 0, err
    result = json.loads(out)
    assert result["counts"] == {"done": 2}
    assert all(r["finished"] == finished[r["id"]] for r in result["runs"] if r["id"] in finished)  # kept
