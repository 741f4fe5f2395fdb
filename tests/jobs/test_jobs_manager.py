"""Job manager on real threads and files: reuse of finished runs, exactly-once under concurrent submits,
cancel within a batch, failures captured, invalid configs refused at submit, diagnostics stored."""

import json
import threading
import time

import pytest

from fairlin_core.errors import FairLinError
from fairlin_core.jobs import JobManager, LocalThreadExecutor, RunStore, get_manager
from conftest import TOY, job_config



def quick(budget=0.5, seed=0, method="random", **changes):
    """A toy run that takes a fraction of a second."""
    return job_config(TOY, method, budget, seed=seed, **{"finetune": {"epochs": 0}, **changes})


def slow():
    """A toy SNL run that would take minutes: budget 1 is never reached, so it runs every epoch."""
    return job_config(TOY, "snl", 1, snl={"epochs": 5000}, finetune={"epochs": 0})


class CountingExecutor(LocalThreadExecutor):
    """Counts the jobs handed to the executor, per run id."""

    def __init__(self, workers):
        super().__init__(workers)
        self.counts = {}
        self.lock = threading.Lock()

    def submit(self, job):
        with self.lock:
            self.counts[job.run_id] = self.counts.get(job.run_id, 0) + 1
        super().submit(job)


@pytest.fixture
def manager(tmp_path):
    manager = JobManager(tmp_path / "store", workers=1)
    yield manager
    manager.shutdown()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_identical_config_returns_the_finished_run_without_recomputing(manager, tmp_path):
    run_id = manager.submit(quick())
    assert manager.wait([run_id], timeout=60)
    first = manager.status(run_id)
    assert first.status == "done" and first.fraction == 1.0
    again = JobManager(manager.store, workers=1)
    try:
        start = time.perf_counter()
        assert again.submit(quick(budget="50%", finetune={"epochs": 0, "lr": 0.001})) == run_id
        assert time.perf_counter() - start < 1.0
        assert again.jobs() == [] and again.status(run_id).finished == first.finished
    finally:
        again.shutdown()
    run = manager.store.get_run(run_id)
    assert run.status == "done" and run.relu_count == 16
    assert set(run.tables["groups"].columns) == {"split", "group", "n", "base_accuracy", "linearized_accuracy",
                                                 "accuracy"}
    assert list(run.tables["groups"]["group"]) == ["majority", "minority"]
    assert run.summary["config_hash"].startswith(run_id)


def test_three_threads_submitting_overlapping_sweeps_run_each_config_once(tmp_path):
    executors = [CountingExecutor(workers=2), CountingExecutor(workers=1)]
    store = RunStore(tmp_path / "store")
    manager = JobManager(store, executor=executors[0])
    other = JobManager(store, executor=executors[1])  # a second manager on the same store in this process
    sweeps = [[quick(b, s) for b in (4, 8, 12) for s in (0, 1)],
              [quick(b, s) for b in (8, 12, 16) for s in (0, 1)],
              [quick(b, 1) for b in (4, 16, 20)]]
    barrier = threading.Barrier(3)
    results, errors = {}, []

    def submit_all(i):
        try:
            barrier.wait()
            target = other if i == 2 else manager
            results[i] = [(config, target.submit(config)) for config in sweeps[i]]
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=submit_all, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    pairs = [pair for i in range(3) for pair in results[i]]
    ids = {run_id for _, run_id in pairs}
    assert len(ids) == 9  # distinct configs: budgets 4, 8, 12, 16 x seeds 0, 1, plus budget 20 seed 1
    assert manager.wait(list(ids), timeout=120) and other.wait(list(ids), timeout=60)
    handed = [run_id for executor in executors for run_id, count in executor.counts.items() for _ in range(count)]
    assert sorted(handed) == sorted(ids)  # every distinct config went to an executor exactly once
    for config, run_id in pairs:
        run = store.get_run(run_id)
        assert run.status == "done"
        assert run.summary["config_hash"] == config.canonical_hash()
        assert run.relu_count == config.recipe.budget
        sidecar = json.loads((run.path / "model.json").read_text())
        assert sidecar["config_hash"] == config.canonical_hash() and sidecar["job"]["seed"] == config.recipe.seed
    manager.shutdown()
    other.shutdown()


def test_cancel_a_running_job_stops_within_a_batch_and_leaves_nothing(manager):
    run_id = manager.submit(slow())
    wait_for(lambda: manager.status(run_id).fraction > 0)
    state = manager.status(run_id)
    assert state.status == "running" and state.stage == "snl" and "ReLUs" in state.message
    start = time.perf_counter()
    assert manager.cancel(run_id)
    wait_for(lambda: manager.status(run_id).status != "running", timeout=10)
    assert time.perf_counter() - start < 1.0
    assert manager.status(run_id).status == "cancelled"
    run = manager.store.get_run(run_id)
    assert run.status == "cancelled" and run.tables == {} and run.error == "cancelled while running"
    assert not (manager.store.runs_dir / run_id).exists()
    assert list(manager.store.staging_root.iterdir()) == []
    assert not manager.cancel(run_id)


def test_cancel_a_queued_job_and_resubmit_it(manager):
    running = manager.submit(slow())
    queued = manager.submit(quick())
    assert manager.status(queued).status == "queued"
    assert manager.cancel(queued) and manager.status(queued).status == "cancelled"
    manager.cancel(running)
    assert manager.wait([running], timeout=10)
    assert manager.store.get_run(queued).error == "cancelled before it started"
    assert manager.submit(quick()) == queued  # a cancelled config runs again when resubmitted
    assert manager.wait([queued], timeout=60) and manager.status(queued).status == "done"


def test_a_failing_job_keeps_a_readable_message_and_its_traceback(manager):
    config = quick(dataset={"name": "digits"})  # the toy MLP cannot take 8x8 images
    run_id = manager.submit(config)
    assert manager.wait([run_id], timeout=60)
    state = manager.status(run_id)
    assert state.status == "failed" and "expects input (2,)" in state.error
    run = manager.store.get_run(run_id)
    assert "Traceback" in run.traceback and "FairLinError" in run.traceback
    assert not (manager.store.runs_dir / run_id).exists()


def test_invalid_configs_are_refused_at_submit_and_nothing_is_queued(manager):
    with pytest.raises(FairLinError, match="unknown method"):
        manager.submit(quick(method="magic"))
    with pytest.raises(FairLinError, match="unknown job config key"):
        manager.submit({"checkpoint": TOY, "method": "snl", "budget": 0.5, "epochs": 2})
    assert manager.jobs() == [] and manager.store.list_runs() == []


def test_mitigation_and_diagnostics_are_run_and_stored(manager):
    run_id = manager.submit(job_config(TOY, "random", 0.5, finetune={"epochs": 2}, mitigation={"mu": 0.5},
                                      diagnostics=["accuracy"]))
    assert manager.wait([run_id], timeout=60)
    run = manager.store.get_run(run_id)
    assert run.status == "done", run.error
    assert {"audit:accuracy", "audit:summary"} <= set(run.tables)
    assert "lambda:minority" in run.tables["history"].columns
    assert run.worst_group_accuracy == min(run.tables["groups"]["accuracy"])


def test_unknown_run_ids_and_requeue_of_a_done_run_are_refused(manager):
    with pytest.raises(FairLinError, match="does not exist"):
        manager.status("0123456789abcdef")
    run_id = manager.submit(quick())
    assert manager.wait([run_id], timeout=60)
    with pytest.raises(FairLinError, match="expected an interrupted"):
        manager.requeue(run_id)


def test_get_manager_is_one_manager_per_store(tmp_path):
    manager = get_manager(tmp_path / "store", workers=1)
    try:
        assert get_manager(str(tmp_path / "store")) is manager
        assert get_manager(tmp_path / "other") is not manager
    finally:
        get_manager(tmp_path / "other").shutdown()
        manager.shutdown()
    assert get_manager(tmp_path / "store") is not manager  # a shut-down manager is replaced
    get_manager(tmp_path / "store").shutdown()
