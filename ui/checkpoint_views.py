"""View models of the Models & data page and the sidebar: checkpoint overviews and choices (shipped + user),
and base-model training on a background thread. No streamlit here."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fairlin_core.checkpoints import save_checkpoint
from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS, checkpoint_group_table, checkpoint_table
from fairlin_core.checkpoints.upload import SAFE_NAME
from fairlin_core.data import load_dataset
from fairlin_core.errors import FairLinError
from fairlin_core.jobs.store import ACTIVE, resolve_store_root
from fairlin_core.models import resolve_spec
from fairlin_core.runtime import Cancelled, Progress
from fairlin_core.train import base_sidecar_metadata, train_base

USER_CHECKPOINTS = "user_checkpoints"


def user_checkpoint_dir(store_root: str | Path | None = None) -> Path:
    """Where uploaded and dashboard-trained checkpoints go: <run store>/user_checkpoints."""
    return resolve_store_root(store_root) / USER_CHECKPOINTS


def checkpoints_overview(user_dir: str | Path | None = None) -> pd.DataFrame:
    """Shipped and user checkpoints, one row each, with a ``source`` column (shipped / user)."""
    tables = [checkpoint_table(SHIPPED_CHECKPOINTS).assign(source="shipped")]
    if user_dir is not None and Path(user_dir).is_dir():
        tables.append(checkpoint_table(user_dir).assign(source="user"))
    table = pd.concat(tables, ignore_index=True)
    return table[["source"] + [c for c in table.columns if c != "source"]]


def checkpoint_groups_overview(user_dir: str | Path | None = None) -> pd.DataFrame:
    """Per-group accuracy recorded in the sidecars of shipped and user checkpoints."""
    tables = [checkpoint_group_table(SHIPPED_CHECKPOINTS)]
    if user_dir is not None and Path(user_dir).is_dir():
        tables.append(checkpoint_group_table(user_dir))
    return pd.concat(tables, ignore_index=True)


def checkpoint_choices(user_dir: str | Path | None = None, dataset: str | None = None) -> dict[str, str]:
    """{label: weights path} of base checkpoints, optionally only those trained on ``dataset``."""
    table = checkpoints_overview(user_dir)
    if dataset:
        table = table[table["dataset"] == dataset]
    return {(row.checkpoint if row.source == "shipped" else f"{row.checkpoint} (user)"): row.path
            for row in table.itertuples()}


@dataclass
class BaseTrainingJob:
    """One base-model training run on a background thread (see :class:`BaseTrainer`)."""

    id: str
    dataset: str
    model: str
    width: int
    epochs: int
    seed: int
    name: str
    status: str = "queued"
    progress: Progress = field(default_factory=lambda: Progress(0.0, "queued"))
    error: str | None = None
    path: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


class BaseTrainer:
    """Trains base models one at a time on a daemon thread and saves them into ``out_dir``.

    ``submit`` validates the choices (dataset loads, model builds) before queueing; ``jobs`` lists
    snapshots; ``cancel`` stops a job at its next batch. The thread only writes job state.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self._jobs: dict[str, BaseTrainingJob] = {}
        self._lock = threading.Lock()
        self._queue: list[tuple[BaseTrainingJob, dict[str, Any]]] = []
        self._wake = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._work, name="fairlin-base-trainer", daemon=True)
        self._thread.start()

    def submit(self, dataset: str, model: str = "resnet18", *, width: int = 16, epochs: int = 5, seed: int = 0,
               name: str | None = None, data_root: str | None = None) -> str:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise FairLinError(f"epochs must be a positive integer, got {epochs!r}")
        name = name or f"{dataset}_{model}_w{width}_s{seed}"
        if not SAFE_NAME.fullmatch(name):
            raise FairLinError(f"checkpoint name {name!r} is not allowed; expected letters, digits, '_', '-' or '.'")
        if (self.out_dir / f"{name}.safetensors").exists():
            raise FairLinError(f"a user checkpoint named {name} already exists; choose another name")
        bundle = load_dataset(dataset, data_root=data_root, seed=seed)
        options = {"width": width} if model != "mlp" else {}
        resolve_spec(model, bundle.num_classes, bundle.input_shape, **options)
        job = BaseTrainingJob(uuid.uuid4().hex[:12], dataset, model, width, epochs, seed, name)
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append((job, {"bundle": bundle, "options": options}))
            self._wake.notify_all()
        return job.id

    def jobs(self) -> list[BaseTrainingJob]:
        with self._lock:
            return [BaseTrainingJob(**{**j.__dict__, "progress": Progress(j.progress.fraction, j.progress.stage,
                                                                          j.progress.message,
                                                                          dict(j.progress.metrics))})
                    for j in self._jobs.values()]

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status not in ACTIVE:
                return False
            job.cancel.set()
            if job.status == "queued":
                job.status = "cancelled"
            return True

    def wait(self, job_id: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                status = self._jobs[job_id].status
            if status not in ACTIVE:
                return status
            time.sleep(0.1)
        return status

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                job, inputs = self._queue.pop(0)
                if job.status != "queued":
                    continue
                job.status = "running"
            try:
                path = self._train(job, inputs)
            except Cancelled:
                status, error, path = "cancelled", None, None
            except FairLinError as failure:
                status, error, path = "failed", str(failure), None
            except Exception as failure:  # reported as one readable line
                status, error, path = "failed", f"{type(failure).__name__}: {failure}", None
            else:
                status, error = "done", None
            with self._lock:
                job.status, job.error, job.path = status, error, str(path) if path else None
                if status == "done":
                    job.progress = Progress(1.0, "done", f"saved {path}")

    def _train(self, job: BaseTrainingJob, inputs: dict[str, Any]) -> Path:
        from .train import train_base
        from .train import base_sidecar_metadata

        def progress(update: Progress) -> None:
            with self._lock:
                job.progress = update

        start = time.perf_counter()
        model, spec, config, history = train_base(inputs["bundle"], job.model, model_options=inputs["options"],
                                                  epochs=job.epochs, seed=job.seed, progress=progress,
                                                  cancel=job.cancel)
        metadata = base_sidecar_metadata(model, inputs["bundle"], seed=job.seed, config=config, history=history,
                                         train_seconds=time.perf_counter() - start)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(self.out_dir / f"{job.name}.safetensors", model, spec, metadata)


_trainers: dict[Path, BaseTrainer] = {}


_trainers_lock = threading.Lock()


def get_base_trainer(out_dir: str | Path) -> BaseTrainer:
    """The process-wide base trainer writing into ``out_dir``."""
    key = Path(out_dir).resolve()
    with _trainers_lock:
        if key not in _trainers:
            _trainers[key] = BaseTrainer(key)
        return _trainers[key]
