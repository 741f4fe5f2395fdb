"""The Ray executor on a real local Ray instance started here (2 CPUs, no dashboard, stopped at the end):
a sweep equals the local executor's to the weight, a killed worker is retried and its run committed once,
cancel reaches a running task, a deterministic failure is stored once, Ray lost under a sweep leaves its runs
interrupted, a killed driver's sweep resumes,
the audit grid's chunks run as Ray tasks (never more in flight than CPUs), and without Ray `--executor ray` exits 2 with the install command."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from fairlin_core.audits.grid import AuditGrid, build_audit
from fairlin_core.cli import main
from fairlin_core.errors import FairLinError
from fairlin_core.jobs import JobConfig, JobManager, RunStore, ray_executor
from fairlin_core.jobs.ray_executor import RayChunkRunner, RayExecutor, RaySession
from conftest import REPO, TOY

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance of 2 CPUs on loopback only; its workers import the installed fairlin_core
    (pip install -e .)."""
    ray_executor.init_local_ray(ray, num_cpus=2, log_to_driver=False,
                                runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


class CountingRayExecutor(RayExecutor):
    """Counts how often the manager is told each run's outcome."""

    def __init__(self, **options):
        super().__init__(**options)
        self.finished = {}

    def submit(self, job):
        finish = job.finish

        def counted(summary, error):
            self.finished[job.run_id] = self.finished.get(job.run_id, 0) + 1
            finish(summary, error)
        job.finish = counted
        super().submit(job)


def sweep():
    """Six small toy2d runs: random and SNL placements, finetune 0-2 epochs."""
    return [JobConfig(TOY, "random", budget, seed=seed, finetune={"epochs": epochs})
            for budget, seed, epochs in ((4, 0, 0), (8, 1, 1), (12, 0, 2))] + \
           [JobConfig(TOY, "snl", budget, seed=seed, snl={"epochs": 3}, finetune={"epochs": epochs})
            for budget, seed, epochs in ((8, 0, 1), (4, 1, 0), (16, 2, 2))]


def slow(epochs=5000):
    """A toy SNL run whose budget of 1 ReLU is never reached: it runs all its epochs (~0.1 s each)."""
    return JobConfig(TOY, "snl", 1, snl={"epochs": epochs}, finetune={"epochs": 0})


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_sweep_through_ray_equals_the_local_executor_to_the_weight(ray_cluster, tmp_path):
    local = JobManager(tmp_path / "local", workers=1)
    remote = JobManager(tmp_path / "ray", executor="ray")
    try:
        local_ids = [local.submit(c) for c in sweep()]
        ray_ids = [remote.submit(c) for c in sweep()]
        assert local.wait(local_ids, timeout=120) and remote.wait(ray_ids, timeout=180)
    finally:
        local.shutdown()
        remote.shutdown()
    assert ray_ids == local_ids and len(set(ray_ids)) == 6
    assert remote.executor.workers == 2  # the cluster's CPUs
    for run_id in ray_ids:
        ours, theirs = local.store.get_run(run_id), remote.store.get_run(run_id)  # both verified by manifest
        assert ours.status == theirs.status == "done"
        a, b = load_file(ours.path / "model.safetensors"), load_file(theirs.path / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert ours.tables["groups"].equals(theirs.tables["groups"])
        assert theirs.summary["config_hash"].startswith(run_id) and theirs.relu_count == ours.relu_count
        assert json.loads((theirs.path / "model.json").read_text())["base_checkpoint"] == str(TOY)


def test_a_killed_worker_is_retried_and_its_run_committed_exactly_once(ray_cluster, tmp_path):
    executor = CountingRayExecutor(retries=2)
    manager = JobManager(tmp_path / "store", executor=executor)
    try:
        run_id = manager.submit(slow(epochs=60))
        wait_for(lambda: executor.attempts(run_id) and manager.status(run_id).fraction > 0)
        first = executor.attempts(run_id)[0]["pid"]
        assert manager.status(run_id).status == "running" and manager.status(run_id).stage == "snl"
        os.kill(first, signal.SIGKILL)
        assert manager.wait([run_id], timeout=240)
    finally:
        manager.shutdown()
    pids = [a["pid"] for a in executor.attempts(run_id)]
    assert len(pids) == 2 and pids[0] == first and pids[1] != first
    assert executor.finished == {run_id: 1}
    run = manager.store.get_run(run_id)
    assert run.status == "done" and run.summary["relu_count"] == run.relu_count
    assert [p.name for p in manager.store.runs_dir.iterdir()] == [run_id]
    assert not any(manager.store.staging_root.iterdir())


def test_cancel_reaches_a_running_task_and_leaves_it_cancelled(ray_cluster, tmp_path):
    manager = JobManager(tmp_path / "store", executor="ray")
    try:
        run_id = manager.submit(slow())
        wait_for(lambda: manager.status(run_id).fraction > 0)  # progress of the remote run arrived
        assert "ReLUs" in manager.status(run_id).message
        started = time.monotonic()
        assert manager.cancel(run_id)
        assert manager.wait([run_id], timeout=60)
        assert time.monotonic() - started < 30
    finally:
        manager.shutdown()
    row = manager.store.row(run_id)
    assert row["status"] == "cancelled" and row["error"] == "cancelled while running"
    assert not (manager.store.runs_dir / run_id).exists() and not any(manager.store.staging_root.iterdir())


def test_a_deterministic_failure_is_stored_failed_once_and_not_retried(ray_cluster, tmp_path):
    executor = CountingRayExecutor(retries=3)
    manager = JobManager(tmp_path / "store", executor=executor)
    config = JobConfig(TOY, "random", 4, dataset={"name": "cifar10"}, data_root=str(tmp_path / "no-data"),
                       finetune={"epochs": 0})  # valid on the driver; the worker has no CIFAR-10
    try:
        run_id = manager.submit(config)
        assert manager.wait([run_id], timeout=120)
    finally:
        manager.shutdown()
    row = manager.store.row(run_id)
    assert row["status"] == "failed"
    assert row["error"].startswith("cannot load CIFAR-10: missing") and "no-data" in row["error"]
    assert executor.finished == {run_id: 1} and len(executor.attempts(run_id)) == 1


def test_ray_lost_under_a_sweep_leaves_its_running_and_queued_runs_interrupted_instead_of_hanging(ray_cluster,
                                                                                                     tmp_path):
    manager = JobManager(tmp_path / "store", executor=RayExecutor(workers=1))
    try:
        running, queued = manager.submit(slow()), manager.submit(slow(epochs=4999))
        wait_for(lambda: manager.status(running).fraction > 0)
        ray.kill(manager.executor.session.board)  # every call of the driver goes through it: Ray answers no more
        assert manager.wait([running, queued], timeout=60)  # the task itself ends at its next cancel poll
    finally:
        manager.shutdown()
    for run_id in (running, queued):
        status = manager.status(run_id)
        assert status.status == "interrupted" and "Ray was lost" in status.error, status
    assert not any(manager.store.staging_root.iterdir())


def test_the_audit_grid_runs_its_chunks_as_ray_tasks_with_the_local_results(ray_cluster, tmp_path):
    grid = AuditGrid(checkpoint=TOY, methods=("random", "snl"), budgets=("50%",), seeds=(0, 1), snl_epochs=2,
                     finetune_epochs=1, diagnostics=(), detail=())
    local = build_audit(grid, tmp_path / "local")
    runner = RayChunkRunner()
    runner.session = session = RaySession()
    submitted, busy = [], []  # busy: chunks still running when the next one was submitted
    submit = session.submit_chunk

    def spied(*args):
        busy.append(len(ray.wait(submitted, num_returns=len(submitted), timeout=0)[1]) if submitted else 0)
        submitted.append(submit(*args))
        return submitted[-1]
    session.submit_chunk = spied
    try:
        remote = build_audit(grid, tmp_path / "ray", run_chunks=runner)
    finally:
        runner.close()
    assert ray.is_initialized()  # the runner reused this process's Ray and left it running
    assert len(submitted) == 4 and session.slots == 2 and max(busy) < 2  # never more chunks in flight than CPUs
    key = ["run_id", "group", "split"]
    assert len(remote.runs) == len(local.runs) == 8
    assert remote.groups.sort_values(key).reset_index(drop=True).equals(
        local.groups.sort_values(key).reset_index(drop=True))
    assert not list((tmp_path / "ray" / "chunks").glob("*.partial"))


def _children(pid):
    import psutil
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _wait_gone(pids):
    """Wait until every process in ``pids`` has ended (a killed one may take a moment)."""
    import psutil
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=60)


@pytest.mark.slow
def test_a_killed_driver_leaves_runs_interrupted_and_the_rerun_resumes_without_recomputing(tmp_path):
    store = tmp_path / "store"
    command = [sys.executable, "-m", "fairlin_core", "sweep", "--checkpoint", TOY, "--methods", "snl", "--budgets",
               "1,2,3,4", "--snl-epochs", "25", "--finetune-epochs", "0", "--executor", "ray", "--store", str(store),
               "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop(ray_executor.ADDRESS_ENV, None)
    driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children = []
    try:
        def progress():
            nonlocal children
            children = _children(driver.pid) or children
            if driver.poll() is not None:
                pytest.fail(f"the sweep ended before it was killed: {driver.stderr.read().decode()}")
            if not store.joinpath("runs.sqlite").exists():
                return False
            statuses = [r["status"] for r in RunStore(store).list_runs()]
            return "done" in statuses and "running" in statuses
        wait_for(progress, timeout=240)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        for pid in children:  # the Ray driver process and the local Ray instance it started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_gone(children)
    killed = {r["id"]: r for r in RunStore(store).list_runs()}
    assert {r["status"] for r in killed.values()} <= {"done", "interrupted", "queued"} and \
        "interrupted" in {r["status"] for r in killed.values()}
    done = {run_id: r["finished"] for run_id, r in killed.items() if r["status"] == "done"}
    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["counts"] == {"done": 4}
    after = {r["id"]: r["finished"] for r in result["runs"]}
    assert all(after[run_id] == finished for run_id, finished in done.items())  # not recomputed


def test_without_ray_the_ray_executor_exits_2_with_the_install_command(monkeypatch, tmp_path, capsys):
    def missing(name, *args):
        raise ModuleNotFoundError(f"No module named {name!r}")
    monkeypatch.setattr(ray_executor, "import_module", missing)
    with pytest.raises(FairLinError, match=r'pip install "fairlin\[ray\]"'):
        JobManager(tmp_path / "store", executor="ray")
    for argv in (["sweep", "--checkpoint", TOY, "--budgets", "4", "--executor", "ray", "--store", str(tmp_path)],
                 ["default-audit", "--checkpoint", TOY, "--methods", "random", "--budgets", "4", "--out",
                  str(tmp_path / "grid"),
                  "--executor", "ray"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "needs Ray" in err[0] and 'pip install "fairlin[ray]"' in err[0]
