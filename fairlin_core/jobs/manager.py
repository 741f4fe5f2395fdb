"""The job manager: submit configs, watch progress, cancel, requeue; one per process and store.

``submit(config)`` validates the config, keys it by its canonical hash and either returns an
existing run (done, or queued/running in a live process: a config never runs twice) or queues it
for the executor (FIFO). Workers only write progress into thread-safe job state; pages and the CLI
poll ``status(id)`` / ``jobs()``. ``cancel(id)`` sets the job's flag, checked every batch; a
cancelled run leaves no artifacts behind. ``shutdown()`` stops running jobs and leaves them and the
queued ones ``interrupted`` (resumable with ``requeue`` or by submitting the config again).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import FairLinError, brief
from ..limits import check_count
from ..outputs import prepare_output_file
from ..runtime import Cancelled, Progress
from .config import AnyConfig, TrainBaseConfig, as_config, config_from_dict
from .executor import Executor, ExecutorJob, LocalThreadExecutor, RunLost
from .ray_executor import DEFAULT_RETRIES, RayExecutor
from .store import ACTIVE, RunStore, now, resolve_store_root, user_checkpoint_dir

REQUEUEABLE = ("interrupted", "cancelled", "failed", "damaged")
EXECUTORS = ("local", "ray")


def make_executor(kind: str = "local", workers: int | None = None, *, ray_address: str | None = None,
                  ray_retries: int = DEFAULT_RETRIES) -> Executor:
    """``local``: :class:`LocalThreadExecutor` (threads of this process); ``ray``: :class:`RayExecutor` (a local
    Ray instance, or the cluster at ``ray_address``: ``auto`` or ``HOST:PORT``; FairLinError with the install
    command when Ray is missing). workers (None: the executor's default) and ray_retries are bounded by
    ``RUN_LIMITS``."""
    if workers is not None:
        check_count(workers, "workers", "workers")
    check_count(ray_retries, "ray_retries", "retries", minimum=0)
    if kind == "local":
        return LocalThreadExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers, address=ray_address, retries=ray_retries)
    raise FairLinError(f"unknown executor {brief(kind)}; expected one of {', '.join(EXECUTORS)}")


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job: status, progress (fraction in [0, 1], stage, message, latest metrics) and
    the outcome (error message; the traceback stays in the store)."""

    id: str
    status: str
    fraction: float
    stage: str
    message: str
    metrics: dict[str, Any]
    error: str | None
    config: dict[str, Any]
    created: str | None
    started: str | None
    finished: str | None


@dataclass
class _Job:
    """Mutable state of a job this manager queued; guarded by the manager's lock."""

    id: str
    config: AnyConfig
    status: str = "queued"
    progress: Progress = field(default_factory=lambda: Progress(0.0, "queued"))
    cancel: threading.Event = field(default_factory=threading.Event)
    created: str = field(default_factory=now)
    started: str | None = None
    stopping: bool = False
    staging: Path | None = None


class JobManager:
    """Queue, run and track jobs of one run store.

    store: a RunStore or its root (None = $FAIRLIN_STORE, else ./fairlin_runs). workers: runs at a time
    (None = local: one per CUDA GPU, else 1; ray: the cluster's GPUs, else its CPUs). executor: ``"local"``
    (threads of this process, the default), ``"ray"`` (Ray tasks; ``ray_address`` and ``ray_retries`` as in
    :func:`make_executor`) or an :class:`Executor` instance.
    """

    def __init__(self, store: RunStore | str | os.PathLike[str] | None = None, workers: int | None = None,
                 executor: Executor | str | None = None, *, ray_address: str | None = None,
                 ray_retries: int = DEFAULT_RETRIES) -> None:
        self.store = store if isinstance(store, RunStore) else RunStore(store)
        if isinstance(executor, Executor):
            self.executor = executor
        else:
            self.executor = make_executor(executor or "local", workers, ray_address=ray_address,
                                          ray_retries=ray_retries)
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        _live_managers.add(self)

    # -- submitting ----------------------------------------------------------------------------
    def submit(self, config: AnyConfig | dict[str, Any]) -> str:
        """Queue ``config`` (a JobConfig, a TrainBaseConfig or the dict of either) and return its run id;
        FairLinError if it is invalid.

        An identical config that is done, queued or running returns that run's id and nothing new runs.
        A train-base config without ``out_dir`` writes into this store's ``user_checkpoints`` folder.
        """
        config = as_config(config)
        if isinstance(config, TrainBaseConfig) and config.out_dir is None:
            config = replace(config, out_dir=str(user_checkpoint_dir(self.store.root)))
        config = config.validate()
        if isinstance(config, TrainBaseConfig):  # its checkpoint's folder must take it before the run is queued
            prepare_output_file(config.checkpoint_path, [".json"], what="user checkpoint", hint="choose another name")
        config_hash = config.canonical_hash()
        with self._lock:
            if self._closed:
                raise FairLinError("the job manager is shut down; expected a running one (see get_manager)")
            claim = self.store.claim(config_hash, config.to_dict())
            if claim.run:
                job = _Job(claim.id, config)
                self._jobs[claim.id] = job
                self.executor.submit(ExecutorJob(
                    run_id=job.id, config=config, config_hash=config_hash, start=lambda: self._start(job),
                    progress=lambda update: self._progress(job, update), cancel=job.cancel,
                    finish=lambda summary, error: self._finish(job, summary, error)))
                self._changed.notify_all()
        return claim.id

    def requeue(self, run_id: str) -> str:
        """Queue an interrupted (or cancelled, failed, damaged) run again under the same id."""
        row = self.store.row(run_id)
        if row["status"] not in REQUEUEABLE:
            raise FairLinError(f"run {row['id']} is {row['status']}; expected an interrupted, cancelled, failed or "
                               f"damaged run")
        config = config_from_dict(row["config"])
        if config.canonical_hash() != row["config_hash"]:
            if isinstance(config, TrainBaseConfig):
                raise FairLinError(f"run {row['id']} no longer hashes as when it was queued; expected the same "
                                   f"config (submit it again to run it as a new run)")
            raise FairLinError(f"run {row['id']} no longer hashes as when it was queued: its checkpoint "
                               f"({config.checkpoint}) changed, or an older FairLin (another hash format) queued it; "
                               f"expected the same file (submit the config again to run it as a new run)")
        return self.submit(config)

    def take_over(self, run_ids: list[str]) -> list[str]:
        """Queue here the runs among ``run_ids`` that another process had queued or was running and left
        ``interrupted`` (it died or shut down): a sweep shared with a peer finishes the peer's share instead
        of giving up. Runs this manager queued itself are left alone. Returns the ids taken over."""
        taken = []
        for run_id in run_ids:
            with self._lock:
                if run_id in self._jobs:
                    continue
            if self.store.row(run_id)["status"] == "interrupted":  # reading a dead owner's row marks it so
                taken.append(self.requeue(run_id))
        return taken

    # -- worker callbacks (executor threads) -----------------------------------------------------
    def _start(self, job: _Job) -> Path | None:
        with self._lock:
            if job.cancel.is_set() or job.status != "queued" or not self.store.mark_running(job.id):
                return None
            job.staging = self.store.staging_dir(job.id)
            job.status = "running"
            job.started = now()
            job.progress = Progress(0.0, "starting")
            self._changed.notify_all()
            return job.staging

    def _progress(self, job: _Job, update: Progress) -> None:
        with self._lock:
            job.progress = update

    def _finish(self, job: _Job, summary: dict[str, Any] | None, error: BaseException | None) -> None:
        assert job.staging is not None
        if error is None:
            try:
                self.store.publish(job.id, job.staging, summary or {})
                status = "done"
            except Exception as failure:  # e.g. disk full: the run fails, nothing is marked done
                error = failure
        if error is not None:
            self.store.discard(job.staging)
            if isinstance(error, RunLost):
                status = "interrupted"
                self.store.mark_stopped(job.id, status, str(error))
            elif isinstance(error, Cancelled):
                status = "interrupted" if job.stopping else "cancelled"
                self.store.mark_stopped(job.id, status, "stopped when the job manager shut down; requeue it to "
                                        "finish it" if job.stopping else "cancelled while running")
            else:
                status = "failed"
                message = str(error) if isinstance(error, FairLinError) else f"{type(error).__name__}: {error}"
                self.store.mark_failed(job.id, message, "".join(traceback.format_exception(error)))
        with self._lock:
            job.status = status
            self._changed.notify_all()

    # -- watching ------------------------------------------------------------------------------
    def status(self, job_id: str) -> JobStatus:
        """Live state of a job of this manager while it is queued or running; else what the store says."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.status in ACTIVE:
                p = job.progress
                return JobStatus(job.id, job.status, p.fraction, p.stage, p.message, dict(p.metrics), None,
                                 job.config.to_dict(), job.created, job.started, None)
        row = self.store.row(job_id)
        done = row["status"] == "done"
        return JobStatus(row["id"], row["status"], 1.0 if done else 0.0, row["status"], row["error"] or "", {},
                         None if done else row["error"], row["config"], row["created"], row["started"],
                         row["finished"])

    def jobs(self) -> list[JobStatus]:
        """Every job submitted to this manager that it queued, in submission order."""
        with self._lock:
            ids = list(self._jobs)
        return [self.status(job_id) for job_id in ids]

    def wait(self, job_ids: list[str], timeout: float | None = None, poll: float = 0.2) -> bool:
        """Block until every job is finished (not queued/running); False if ``timeout`` (seconds) passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if all(self.status(job_id).status not in ACTIVE for job_id in job_ids):
                return True
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                return False
            with self._changed:
                self._changed.wait(left)

    # -- stopping ------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> bool:
        """Ask a queued or running job of this manager to stop; True if it was active.

        A queued job is cancelled at once; a running one stops at its next batch and its partial
        artifacts are deleted.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                row = self.store.row(job_id)
                if row["status"] in ACTIVE:
                    raise FairLinError(f"run {row['id']} is {row['status']} in another process ({row['owner']}); "
                                       f"expected to cancel it from the process that queued it")
                return False
            if job.status not in ACTIVE:
                return False
            job.cancel.set()
            if job.status == "queued":
                self.store.mark_stopped(job.id, "cancelled", "cancelled before it started")
                job.status = "cancelled"
                self._changed.notify_all()
            return True

    def shutdown(self, wait: bool = True) -> None:
        """Stop: running jobs are cancelled and, like the queued ones, left ``interrupted``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for job in self._jobs.values():
                if job.status in ACTIVE:
                    job.stopping = True
                    job.cancel.set()
                if job.status == "queued":
                    self.store.mark_stopped(job.id, "interrupted", "the job manager shut down before it started; "
                                            "requeue it to run it")
                    job.status = "interrupted"
            self._changed.notify_all()
        self.executor.shutdown(wait)
        _live_managers.discard(self)


_live_managers: weakref.WeakSet[JobManager] = weakref.WeakSet()
_managers: dict[tuple[Path, str, str | None], JobManager] = {}
_managers_lock = threading.Lock()


def get_manager(store_root: str | os.PathLike[str] | None = None, workers: int | None = None,
                executor: str = "local", ray_address: str | None = None) -> JobManager:
    """The process-wide manager of the store at ``store_root`` for that executor (and Ray address), created on
    first use (``workers`` applies then)."""
    root = resolve_store_root(store_root)
    key = (root, executor, ray_address if executor == "ray" else None)
    with _managers_lock:
        manager = _managers.get(key)
        if manager is None or manager._closed:
            manager = _managers[key] = JobManager(root, workers=workers, executor=executor, ray_address=key[2])
        return manager


@atexit.register
def _shutdown_all() -> None:
    """At exit, stop every live manager so its runs are left interrupted, not running."""
    for manager in list(_live_managers):
        manager.shutdown()
