"""Runs on a Ray cluster (or a local Ray instance): :class:`RayExecutor` and the audit grid's chunks as Ray tasks.

One run = one Ray task (``num_gpus=1`` when the cluster has GPUs, else ``num_cpus=1``). The job config
travels as its validated JSON with its hash, the base checkpoint as a Ray object (weights bytes +
sidecar bytes, put once per file); datasets are read from each worker's own data root (a dataset
missing there fails that run with the loader's message). The task runs :func:`~.executor.execute` in a
temporary folder and returns its artifacts (every file's bytes and sha256, and the summary); the
driver verifies them and commits them to the run store exactly as a local run is committed (the
manager's staging folder, manifest, rename, mark done). The store never leaves the driver.

Progress and cancel go through one :class:`ProgressBoard` actor: tasks report to it at most every
second (and which process runs them), the driver polls it; a cancel sets the run's flag there (the
task reads it at most every half second from its per-batch check) and calls ``ray.cancel``. A worker
process that dies makes Ray run the task again, at most ``retries`` times; an exception raised by the
run itself (a FairLinError, a missing dataset, ...) is not retried: the run is stored ``failed``. When Ray
itself is lost (its raylet, object store or GCS died: every call into it fails), the runs in flight and queued
end ``interrupted`` (:class:`~.executor.RunLost`), and an audit grid stops with one line; the same command
resumes them.

A local Ray instance (no address) listens on the loopback interface only: Ray has no authentication, so anyone
who reaches its ports (GCS, raylet, object manager, agents, workers) can run code as this user.

Ray is optional (``pip install "fairlin[ray]"``): it is imported only when a Ray executor is made,
and :func:`import_ray` says how to install it when it is missing.
"""

from __future__ import annotations

import collections
import hashlib
import ipaddress
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import import_module
from pathlib import Path
from typing import Any

from ..audits.grid import AuditGrid, run_chunk
from ..checkpoints import MAX_SIDECAR_BYTES, MAX_WEIGHTS_BYTES, sidecar_path
from ..errors import CheckpointError, FairLinError, brief, one_line
from ..inputs import read_limited
from ..runtime import Cancelled, CancelFlag, Progress, ProgressFn
from .config import TrainBaseConfig, config_from_dict
from .executor import Executor, ExecutorJob, RunLost, execute, install_checkpoint

RAY_INSTALL = 'pip install "fairlin[ray]"  (or: pip install "ray[default]")'
ADDRESS_ENV = "FAIRLIN_RAY_ADDRESS"
DEFAULT_RETRIES = 2
REPORT_SECONDS = 1.0  # a task reports progress at most this often
CANCEL_POLL_SECONDS = 2.0  # a task asks the board for its cancel flag at most this often (each ask is a round trip)
USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"
LOOPBACK = "127.0.0.1"
DRIVER_POLL_SECONDS = 1.0  # the driver looks at progress and cancels this often (finished tasks: at once)
REQUIRED = ("model.safetensors", "model.json", "groups.csv", "history.csv", "summary.json")  # of every run kind


def import_ray() -> Any:
    """The ``ray`` module; FairLinError with the install command when it is not installed."""
    try:
        return import_module("ray")
    except ImportError:
        raise FairLinError(f"the Ray executor needs Ray, which is not installed; install it with {RAY_INSTALL}, "
                           f"or use the local executor") from None


def init_local_ray(ray: Any, **options: Any) -> None:
    """``ray.init`` of a local instance whose every process listens on :data:`LOOPBACK` only (no dashboard).

    Ray binds its servers to every interface unless the node's address is a loopback one, and on Linux it
    replaces a loopback ``_node_ip_address`` by the machine's address; its switch for a machine-local node (the
    default on macOS and Windows) is turned on for the start. FairLinError when the node still got another address.
    """
    constants = import_module("ray._private.ray_constants")
    cluster = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(_node_ip_address=LOOPBACK, include_dashboard=False, **options)
    finally:
        constants.ENABLE_RAY_CLUSTER = cluster
    address = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(address).is_loopback:
        ray.shutdown()
        raise FairLinError(f"the local Ray instance would listen on {address}, not only on {LOOPBACK}; expected a "
                           f"Ray whose nodes can be kept to loopback (requirements.txt pins one), or a cluster "
                           f"you run yourself (--ray-address)")


def check_retries(retries: int) -> int:
    """``retries`` (how often a task whose worker process died is run again); FairLinError unless an int >= 0."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise FairLinError(f"Ray retries must be a non-negative integer, got {retries!r}")
    return retries


def board_class() -> type:
    """The class of the Ray actor between driver and tasks (one per session): latest progress, the processes
    running each task, cancel flags. Built here so it is shipped by value: the actor's process then starts
    without importing this package (and torch)."""

    class ProgressBoard:
        """Progress reports, task processes and cancel flags, keyed by run id (or chunk name)."""

        def __init__(self) -> None:
            self._reports: dict[str, dict[str, Any]] = {}
            self._attempts: dict[str, list[dict[str, Any]]] = {}
            self._cancelled: set[str] = set()

        def started(self, key: str, pid: int, host: str) -> None:
            self._attempts.setdefault(key, []).append({"pid": pid, "host": host})

        def report(self, key: str, fraction: float, stage: str, message: str, metrics: dict[str, Any]) -> None:
            self._reports[key] = {"fraction": fraction, "stage": stage, "message": message, "metrics": metrics}

        def cancel(self, key: str) -> None:
            self._cancelled.add(key)

        def is_cancelled(self, key: str) -> bool:
            return key in self._cancelled

        def snapshot(self, keys: list[str]) -> dict[str, dict[str, Any]]:
            """{key: {"progress": latest report or None, "attempts": [{"pid", "host"}, ...]}} of ``keys``."""
            return {key: {"progress": self._reports.get(key), "attempts": list(self._attempts.get(key, []))}
                    for key in keys}

        def forget(self, key: str) -> None:
            self._reports.pop(key, None)
            self._attempts.pop(key, None)
            self._cancelled.discard(key)

    return ProgressBoard


class _TaskProgress:
    """A task's progress callback: forwards to the board at most every REPORT_SECONDS (and the last report)."""

    def __init__(self, board: Any, key: str) -> None:
        self.board, self.key, self._last = board, key, float("-inf")

    def __call__(self, update: Progress) -> None:
        moment = time.monotonic()
        if moment - self._last >= REPORT_SECONDS or update.fraction >= 1.0:
            self._last = moment
            self.board.report.remote(self.key, update.fraction, update.stage, update.message, dict(update.metrics))


class _TaskCancel:
    """A task's cancel flag (checked every batch): the board's flag, asked at most every CANCEL_POLL_SECONDS."""

    def __init__(self, ray: Any, board: Any, key: str) -> None:
        self.ray, self.board, self.key = ray, board, key
        self._asked, self._set = float("-inf"), False

    def is_set(self) -> bool:
        moment = time.monotonic()
        if not self._set and moment - self._asked >= CANCEL_POLL_SECONDS:
            self._asked = moment
            self._set = bool(self.ray.get(self.board.is_cancelled.remote(self.key)))
        return self._set


def _checkpoint_blob(path: str | Path) -> tuple[str, bytes, bytes]:
    """(file name, weights bytes, sidecar bytes) of a checkpoint: what travels to the workers, read through the
    input guard like every checkpoint (regular files within the checkpoint size limits)."""
    weights = Path(path)
    return (weights.name, read_limited(weights, MAX_WEIGHTS_BYTES, "checkpoint weights", CheckpointError),
            read_limited(sidecar_path(weights), MAX_SIDECAR_BYTES, "sidecar", CheckpointError))


def _materialise(blob: tuple[str, bytes, bytes], folder: Path) -> Path:
    """Write a shipped checkpoint into ``folder`` under its own name; returns the weights path."""
    name, weights, sidecar = blob
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(weights)
    sidecar_path(path).write_bytes(sidecar)
    return path


def _started(ray: Any, board: Any, key: str) -> tuple[_TaskProgress, _TaskCancel]:
    ray.get(board.started.remote(key, os.getpid(), socket.gethostname()))  # known before the task can end
    return _TaskProgress(board, key), _TaskCancel(ray, board, key)


def run_job_task(key: str, config: dict[str, Any], config_hash: str, blob: tuple[str, bytes, bytes] | None,
                 board: Any) -> dict[str, Any]:
    """The body of one run's Ray task: :func:`execute` in a temporary folder; returns
    ``{"summary", "files": {relative path: bytes}, "sha256": {relative path: hex}}``."""
    ray = import_ray()
    progress, cancel = _started(ray, board, key)
    with tempfile.TemporaryDirectory(prefix="fairlin-ray-") as folder:
        checkpoint_file = _materialise(blob, Path(folder) / "base") if blob is not None else None
        run_dir = Path(folder) / "run"
        run_dir.mkdir()
        summary = execute(config_from_dict(config), run_dir, progress, cancel, remote=(config_hash, checkpoint_file))
        files = {path.relative_to(run_dir).as_posix(): path.read_bytes()
                 for path in sorted(run_dir.rglob("*")) if path.is_file()}
    return {"summary": summary, "files": files,
            "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}


def run_chunk_task(key: str, grid: AuditGrid, method: str, seed: int, blob: tuple[str, bytes, bytes],
                   board: Any) -> dict[str, Any]:
    """The body of one audit-grid chunk's Ray task: :func:`~fairlin_core.audits.grid.run_chunk` on the shipped
    checkpoint (same file name, so the chunk's tables equal a local chunk's)."""
    ray = import_ray()
    progress, cancel = _started(ray, board, key)
    with tempfile.TemporaryDirectory(prefix="fairlin-ray-") as folder:
        local = replace(grid, checkpoint=str(_materialise(blob, Path(folder))))
        return run_chunk(local, method, seed, progress=progress, cancel=cancel)


class RaySession:
    """A connection to Ray for this process: the board actor, the task options and the number of slots.

    address: None = $FAIRLIN_RAY_ADDRESS if set, else a local Ray instance sized to this machine (its
    workers import the installed package, as a cluster's workers do); ``auto`` or ``HOST:PORT`` = an existing cluster. Reuses Ray when
    this process already initialised it (and then leaves it running on :meth:`close`).
    retries: how often a task whose worker process died is run again.
    """

    def __init__(self, address: str | None = None, retries: int = DEFAULT_RETRIES) -> None:
        ray = self.ray = import_ray()
        self.retries = check_retries(retries)
        self.owned = not ray.is_initialized()
        if self.owned:
            address = address or os.environ.get(ADDRESS_ENV) or None
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
            try:
                if address is None:  # a local instance; its workers import the installed fairlin_core, like a cluster's
                    os.environ.setdefault(USAGE_STATS_ENV, "0")  # no usage report to the internet (nor its process)
                    init_local_ray(ray, **options)
                else:
                    ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                reason = one_line(str(error).replace(address, "..."), 200)  # Ray's message may repeat the address
                raise FairLinError(f"could not connect to Ray at {brief(address)} ({reason}); expected a running "
                                   f"cluster (`ray start --head` on the head node) and its address as auto or "
                                   f"HOST:PORT") from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.slots = max(1, self.gpus or int(resources.get("CPU", 1)))
        self.board = ray.remote(num_cpus=0)(board_class()).remote()
        self._lock = threading.Lock()
        self._blobs: dict[tuple[str, int, int], Any] = {}
        self._job = ray.remote(run_job_task)
        self._chunk = ray.remote(run_chunk_task)

    def _options(self) -> dict[str, Any]:
        place = {"num_gpus": 1} if self.gpus else {"num_cpus": 1}
        return {**place, "max_retries": self.retries, "retry_exceptions": False}

    def checkpoint_ref(self, path: str | Path) -> Any:
        """The Ray object holding a checkpoint's bytes, put once per (path, size, mtime)."""
        weights = Path(path)
        stat = weights.stat()
        key = (str(weights), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key not in self._blobs:
                self._blobs[key] = self.ray.put(_checkpoint_blob(weights))
            return self._blobs[key]

    def submit_job(self, key: str, config: dict[str, Any], config_hash: str, checkpoint: str | None) -> Any:
        blob = self.checkpoint_ref(checkpoint) if checkpoint is not None else None
        return self._job.options(**self._options()).remote(key, config, config_hash, blob, self.board)

    def submit_chunk(self, key: str, grid: AuditGrid, method: str, seed: int) -> Any:
        return self._chunk.options(**self._options()).remote(key, grid, method, seed,
                                                             self.checkpoint_ref(grid.checkpoint), self.board)

    def snapshot(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return self.ray.get(self.board.snapshot.remote(keys)) if keys else {}

    def cancel(self, key: str, ref: Any) -> None:
        """Set the task's cancel flag and interrupt it (a queued task never starts)."""
        self.board.cancel.remote(key)
        self.ray.cancel(ref)

    def outcome(self, ref: Any, key: str) -> tuple[Any, BaseException | None]:
        """(the task's return value, None) or (None, the error: Cancelled, the run's own exception, or a
        FairLinError when its worker died more often than the retries allow)."""
        ray = self.ray
        try:
            return ray.get(ref), None
        except ray.exceptions.TaskCancelledError:
            return None, Cancelled("cancelled by request")
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else error
            if isinstance(cause, KeyboardInterrupt):
                cause = Cancelled("cancelled by request")
            return None, cause
        except ray.exceptions.RayError as error:
            return None, FairLinError(f"{key}: the Ray worker running it was lost {self.retries + 1} time(s) "
                                      f"({type(error).__name__}: {str(error).splitlines()[0]}); expected a worker "
                                      f"that stays up (raise --ray-retries to try more often)")

    def lost(self, error: BaseException) -> RunLost:
        """The error to end a run (or a grid) with when calling into Ray failed with ``error``."""
        return RunLost(f"Ray was lost while running it ({type(error).__name__}: {str(error).splitlines()[0]}): its "
                       f"raylet, object store or GCS died, or the cluster went away; run it again to resume it")

    def attempts(self, key: str) -> list[dict[str, Any]]:
        """The processes (pid, host) that started the task ``key``, one per try, then forget the key."""
        try:
            return self.snapshot([key])[key]["attempts"]
        finally:
            self.board.forget.remote(key)

    def close(self) -> None:
        """Stop the board; shut Ray down if this session started it."""
        try:
            self.ray.kill(self.board)
        except Exception:  # the cluster may be gone already
            pass
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


@dataclass
class _Flight:
    job: ExecutorJob
    run_dir: Path
    cancelled: bool = False


class RayExecutor(Executor):
    """Runs each job as a Ray task (see the module docstring); at most ``workers`` tasks in flight.

    workers: None = the cluster's slots (its GPUs, else its CPUs). address, retries: see :class:`RaySession`.
    """

    def __init__(self, workers: int | None = None, address: str | None = None,
                 retries: int = DEFAULT_RETRIES) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise FairLinError(f"workers must be a positive integer, got {workers!r}")
        self.session = RaySession(address, retries)
        self.workers = workers or self.session.slots
        self._queue: collections.deque[ExecutorJob] = collections.deque()
        self._flights: dict[Any, _Flight] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._attempts: dict[str, list[dict[str, Any]]] = {}
        self._thread = threading.Thread(target=self._loop, name="fairlin-ray-driver", daemon=True)
        self._thread.start()

    def submit(self, job: ExecutorJob) -> None:
        with self._lock:
            if self._closed:
                raise FairLinError("the executor is shut down; expected a running job manager")
            self._queue.append(job)
        self._wake.set()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            self._queue.clear()
        self._wake.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """The processes (pid, host) that started ``run_id`` so far, as last polled (one per try)."""
        with self._lock:
            return list(self._attempts.get(run_id, []))

    # -- the driver thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._drive()
        except self.session.ray.exceptions.RayError as error:  # Ray itself is gone
            self._abandon(self.session.lost(error))
        finally:
            self.session.close()

    def _drive(self) -> None:
        """Dispatch, wait, complete and watch until shut down with nothing in flight."""
        while True:
            self._dispatch()
            with self._lock:
                if self._closed and not self._flights:
                    return
                refs = list(self._flights)
            if not refs:
                self._wake.wait(DRIVER_POLL_SECONDS)
                self._wake.clear()
                continue
            ready, _ = self.session.ray.wait(refs, num_returns=len(refs), timeout=DRIVER_POLL_SECONDS)
            for ref in ready:
                self._complete(ref)
            self._watch()

    def _abandon(self, lost: RunLost) -> None:
        """End every job in flight or queued with ``lost`` (a queued one is started first, so that it is
        finished like any other) and take no more."""
        with self._lock:
            self._closed = True
            flights, queued = list(self._flights.values()), list(self._queue)
            self._flights.clear()
            self._queue.clear()
        for flight in flights:
            flight.job.finish(None, lost)
        for job in queued:
            if job.start() is not None:
                job.finish(None, lost)

    def _dispatch(self) -> None:
        """Start queued jobs while slots are free (``job.start()`` outside the lock: it takes the manager's)."""
        while True:
            with self._lock:
                if self._closed or not self._queue or len(self._flights) >= self.workers:
                    return
                job = self._queue.popleft()
            run_dir = job.start()
            if run_dir is None:
                continue
            try:
                config = job.config
                ref = self.session.submit_job(job.run_id, config.to_dict(), job.config_hash,
                                              None if isinstance(config, TrainBaseConfig) else config.checkpoint)
            except Exception as error:  # e.g. the checkpoint vanished: the run fails, the driver goes on
                job.finish(None, error)
                continue
            with self._lock:
                self._flights[ref] = _Flight(job, run_dir)

    def _watch(self) -> None:
        """Forward progress, record the task processes, pass cancels on."""
        with self._lock:
            flights = dict(self._flights)
        snapshot = self.session.snapshot([f.job.run_id for f in flights.values()])
        for ref, flight in flights.items():
            state = snapshot.get(flight.job.run_id, {})
            with self._lock:
                self._attempts[flight.job.run_id] = state.get("attempts", [])
            if state.get("progress"):
                flight.job.progress(Progress(**state["progress"]))
            if flight.job.cancel.is_set() and not flight.cancelled:
                flight.cancelled = True
                self.session.cancel(flight.job.run_id, ref)

    def _complete(self, ref: Any) -> None:
        """Finish the job of a task that ended (it stays in flight until Ray has answered: lost meanwhile, it
        is abandoned with the others)."""
        with self._lock:
            flight = self._flights[ref]
        job = flight.job
        artifacts, error = self.session.outcome(ref, job.run_id)
        attempts = self.session.attempts(job.run_id)
        with self._lock:
            del self._flights[ref]
            self._attempts[job.run_id] = attempts
        if error is None and job.cancel.is_set():
            error = Cancelled("cancelled by request")
        summary = None
        if error is None:
            try:
                summary = self._commit(job, flight.run_dir, artifacts)
            except Exception as failure:  # unverifiable artifacts: the run fails, nothing is marked done
                error = failure
        job.finish(summary, error)

    def _commit(self, job: ExecutorJob, run_dir: Path, artifacts: dict[str, Any]) -> dict[str, Any]:
        """Write a task's artifacts into the run's staging folder after checking them; returns the summary."""
        config = job.config
        files, digests, summary = artifacts["files"], artifacts["sha256"], artifacts["summary"]
        missing = [name for name in REQUIRED if name not in files]
        if missing or summary.get("config_hash") != job.config_hash:
            raise FairLinError(f"run {job.run_id}: the Ray task returned artifacts of another run or incomplete "
                               f"ones (missing {', '.join(missing) or 'nothing'}); expected this config's files")
        for name, data in files.items():
            if hashlib.sha256(data).hexdigest() != digests.get(name):
                raise FairLinError(f"run {job.run_id}: {name} arrived corrupted from its Ray task; expected the "
                                   f"bytes the task wrote")
            target = run_dir / name
            if run_dir.resolve() not in target.resolve().parents:
                raise FairLinError(f"run {job.run_id}: artifact path {name!r} leaves the run folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if isinstance(config, TrainBaseConfig):
            install_checkpoint(run_dir / "model.safetensors", config.checkpoint_path)
        return summary


class RayChunkRunner:
    """A chunk runner for :func:`~fairlin_core.audits.grid.build_audit`: every chunk of a batch is one Ray task,
    and ``((method, seed), chunk)`` pairs come back as they finish. :meth:`close` when the grid is built.

    At most the cluster's slots of chunks are in flight; the next is submitted when one finishes. A task that
    waits on Ray (its cancel poll) lends its CPU back to Ray, which would start a queued task beside it: with
    every chunk queued at once, 2 CPUs ran 3 chunks (measured), and the grid took longer than two processes."""

    def __init__(self, address: str | None = None, retries: int = DEFAULT_RETRIES) -> None:
        # a missing Ray and bad retries are refused now; Ray itself starts with the first chunks, that is after
        # build_audit has checked the grid
        import_ray()
        self.address, self.retries = address, check_retries(retries)
        self.session: RaySession | None = None

    def __call__(self, grid: AuditGrid, chunks: list[tuple[str, int]], progress: ProgressFn | None = None,
                 cancel: CancelFlag | None = None) -> Iterator[tuple[tuple[str, int], dict[str, Any]]]:
        if self.session is None:
            self.session = RaySession(self.address, self.retries)
        session = self.session
        queued, flights = list(chunks), {}
        done = 0

        def fill() -> None:
            while queued and len(flights) < session.slots:
                method, seed = queued.pop(0)
                flights[session.submit_chunk(f"{method}-seed{seed}", grid, method, seed)] = (method, seed)

        try:
            fill()
            while flights:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled by request")
                ready, _ = session.ray.wait(list(flights), num_returns=1, timeout=DRIVER_POLL_SECONDS)
                finished = []
                for ref in ready:
                    method, seed = flights.pop(ref)
                    chunk, error = session.outcome(ref, f"{method}-seed{seed}")
                    session.attempts(f"{method}-seed{seed}")
                    if error is not None:
                        raise error
                    finished.append(((method, seed), chunk))
                fill()  # the next chunks start before these are written
                for item in finished:
                    done += 1
                    yield item
                if progress is not None:
                    states = session.snapshot([f"{m}-seed{s}" for m, s in flights.values()])
                    running = sum((state["progress"] or {}).get("fraction", 0.0) for state in states.values())
                    progress(Progress((done + running) / len(chunks), "audit",
                                      f"{done}/{len(chunks)} chunks done, {len(flights)} running on Ray"))
        except session.ray.exceptions.RayError as error:  # Ray itself is gone: the chunks yielded so far are kept
            raise session.lost(error) from None
        finally:
            for ref, (m, s) in flights.items():
                session.cancel(f"{m}-seed{s}", ref)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
