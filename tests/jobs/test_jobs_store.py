"""Run store on real files: damaged artifacts are confined to their run, dead owners are detected,
listing and filtering, and the store location."""

import json
import subprocess
import sys

import pytest

from fairlin_core.errors import FairLinError
from fairlin_core.jobs import JobManager, RunStore, resolve_store_root
from fairlin_core.jobs.store import LIST_COLUMNS, process_owner
from conftest import TOY, job_config



def quick(budget):
    return job_config(TOY, "random", budget, finetune={"epochs": 0})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A store holding three done runs (budgets 4, 8, 12)."""
    root = tmp_path_factory.mktemp("store")
    manager = JobManager(root, workers=1)
    ids = [manager.submit(quick(b)) for b in (4, 8, 12)]
    assert manager.wait(ids, timeout=60)
    manager.shutdown()
    return root, ids


def test_a_truncated_artifact_marks_only_that_run_damaged(finished):
    root, (first, second, third) = finished
    store = RunStore(root)
    weights = store.runs_dir / second / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (store.runs_dir / third / "groups.csv").write_text("split,group,n\n")
    damaged = store.get_run(second)
    assert damaged.status == "damaged" and damaged.tables == {}
    assert "model.safetensors has 100 bytes" in damaged.error and "truncated" in damaged.error
    assert store.get_run(first).status == "done" and len(store.get_run(first).tables["groups"]) == 2
    assert store.verify(third) and store.get_run(third).status == "damaged"
    assert {r["id"]: r["status"] for r in store.list_runs()} == {first: "done", second: "damaged", third: "damaged"}
    manager = JobManager(store, workers=1)  # resubmitting recomputes a damaged run under the same id
    try:
        assert manager.submit(quick(8)) == second
        assert manager.wait([second], timeout=60)
    finally:
        manager.shutdown()
    assert store.get_run(second).status == "done" and store.verify(second) == ""


def test_a_missing_run_folder_or_manifest_is_reported(finished, tmp_path):
    root, _ = finished
    store = RunStore(tmp_path / "other")
    manager = JobManager(store, workers=1)
    ids = [manager.submit(quick(b)) for b in (2, 3)]
    assert manager.wait(ids, timeout=60)
    manager.shutdown()
    (store.runs_dir / ids[0] / "manifest.json").unlink()
    (store.runs_dir / ids[1]).rename(tmp_path / "moved")
    assert "manifest.json is missing" in store.get_run(ids[0]).error
    assert "is missing" in store.get_run(ids[1]).error


def test_runs_left_by_a_dead_process_are_interrupted_on_open(tmp_path):
    store = RunStore(tmp_path / "store")
    claims = [store.claim(quick(b).canonical_hash(), quick(b).validate().to_dict()) for b in (4, 8)]
    store.mark_running(claims[0].id)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = process_owner().rsplit(":", 2)[0]
    store._db().execute("UPDATE runs SET owner = ?", (f"{host}:{dead.pid}:1",))  # as if queued/run by it
    (store.staging_root / f"{claims[0].id}-{dead.pid}-abcd").mkdir()
    reopened = RunStore(store.root)
    assert [r["status"] for r in reopened.list_runs()] == ["interrupted", "interrupted"]
    assert "requeue" in reopened.row(claims[0].id)["error"]
    assert list(reopened.staging_root.iterdir()) == []


def test_list_runs_shape_filters_and_prefixes(finished):
    root, ids = finished
    store = RunStore(root)
    rows = store.list_runs()
    assert [tuple(r) for r in rows] == [LIST_COLUMNS] * len(rows)
    assert json.loads(json.dumps(rows)) == rows
    assert store.list_runs("queued,running") == []
    assert len(store.list_runs(["done", "damaged"])) == len(rows)
    with pytest.raises(FairLinError, match="unknown status"):
        store.list_runs("finished")
    assert store.resolve_id(ids[0][:6]) == ids[0]
    with pytest.raises(FairLinError, match="does not exist"):
        store.get_run("zzzz")
    table = store.runs_table()
    assert list(table["method"]) == ["random"] * len(rows) and table["mitigation_mu"].isna().all()


def test_store_location_defaults_and_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAIRLIN_STORE", raising=False)
    assert resolve_store_root() == tmp_path / "fairlin_runs"
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "elsewhere"))
    assert resolve_store_root() == tmp_path / "elsewhere"
    assert resolve_store_root("given") == tmp_path / "given"
