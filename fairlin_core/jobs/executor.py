"""Where jobs run: :func:`execute` does one run's work; an :class:`Executor` decides where and when.

The manager hands an executor :class:`ExecutorJob` s; an executor calls ``job.start()`` when it
begins one (which returns the folder to write into, or None if the job was cancelled while queued),
runs :func:`execute`, and reports the outcome with ``job.finish(summary, error)``.
:class:`LocalThreadExecutor` does this on worker threads in this process;
:class:`~fairlin_core.jobs.ray_executor.RayExecutor` runs :func:`execute` as Ray tasks and commits
what they return in this process.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..audits import run_audit, write_audit_csvs
from ..checkpoints import load_checkpoint, read_sidecar, sidecar_path
from ..data import load_dataset
from ..errors import FairLinError, brief
from ..finetune import FinetuneConfig, MitigationConfig, mitigation_factory
from ..linearizers import LinearizeOptions, SNLConfig, linearize
from ..linearizers.output import result_summary, save_linearized
from ..outputs import check_writable, prepare_output_file
from ..runtime import CancelFlag, ProgressFn, check_cancel, default_device, json_ready, report, scaled_progress
from ..train import train_base_checkpoint
from .config import AnyConfig, JobConfig, TrainBaseConfig


def _dataset(config: JobConfig, checkpoint: Any):
    """The checkpoint's own dataset, or the override (checked against the model's input and classes)."""
    if config.dataset is None:
        return checkpoint.dataset(config.data_root)
    data = config.dataset
    return checkpoint.resolve_data(load_dataset(data["name"], data_root=config.data_root, seed=data["seed"],
                                                target=data["target"], group=data["group"], **data["options"]))


def execute(config: AnyConfig, run_dir: Path, progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
            device: torch.device | None = None, *, remote: tuple[str, Path | None] | None = None) -> dict[str, Any]:
    """Run one job and write its artifacts into ``run_dir``; returns the summary (also in summary.json).

    A :class:`TrainBaseConfig` goes to :func:`execute_train_base`; what follows is the linearize job.
    remote: ``(config_hash, checkpoint_file)`` for a run away from the driver (a Ray task): ``config`` was
    validated and hashed there and is not validated again here, the base checkpoint is read from
    ``checkpoint_file`` (its bytes shipped to this worker; the config keeps the driver's path) and a
    train-base run installs nothing (the driver does).

    Artifacts: model.safetensors + model.json (the linearized checkpoint), groups.csv (split, group, n,
    base_accuracy, linearized_accuracy, accuracy), history.csv (per epoch of every stage), audit/*.csv
    (the requested diagnostics, on the test split) and summary.json. Raises Cancelled when ``cancel``
    is set (checked every batch); ``run_dir`` is then incomplete and must be discarded.
    """
    check_writable(run_dir, "run folder")
    if isinstance(config, TrainBaseConfig):
        return execute_train_base(config, run_dir, progress, cancel, device,
                                  config_hash=remote[0] if remote is not None else None)
    config_hash, checkpoint_file = remote if remote is not None else (None, None)
    if config_hash is None:
        config = config.validate()
    started = time.perf_counter()
    device = device or default_device()
    checkpoint = load_checkpoint(checkpoint_file or config.checkpoint)
    bundle = _dataset(config, checkpoint)
    mitigation = MitigationConfig(**config.mitigation) if config.mitigation is not None else None
    options = LinearizeOptions(snl=SNLConfig(**config.snl), finetune=FinetuneConfig(**config.finetune),
                               precision=config.precision)
    split_at = 0.7 if config.diagnostics else 0.95
    result = linearize(checkpoint.model, checkpoint.spec, bundle, config.method, config.budget, options=options,
                       seed=config.seed, device=device, progress=scaled_progress(progress, 0.0, split_at), cancel=cancel,
                       objective_factory=mitigation_factory(bundle, mitigation))
    check_cancel(cancel)
    report(progress, split_at, "save", "writing artifacts")
    config_hash = config_hash or config.canonical_hash()
    run_dir = Path(run_dir)
    weights = save_linearized(result, run_dir, bundle, base_checkpoint=Path(config.checkpoint),
                              extra={"job": config.to_dict(), "config_hash": config_hash})
    groups = pd.concat([result.group_table(split).assign(split=split) for split in result.evaluations["finetuned"]],
                       ignore_index=True)
    groups[["split", "group", "n", "base_accuracy", "linearized_accuracy", "accuracy"]].to_csv(
        run_dir / "groups.csv", index=False)
    result.history.to_csv(run_dir / "history.csv", index=False)
    if config.diagnostics:
        audit = run_audit(checkpoint.path, weights, diagnostics=config.diagnostics, seed=config.seed,
                          data_root=config.data_root, device=device, progress=scaled_progress(progress, split_at, 0.98),
                          cancel=cancel)
        write_audit_csvs(audit, run_dir / "audit")
    summary = {**result_summary(result), "config_hash": config_hash, "config": config.to_dict(),
               "worst_group_accuracy": result.evaluations["finetuned"]["test"]["worst_group_accuracy"],
               "diagnostics": config.diagnostics, "seconds": round(time.perf_counter() - started, 3)}
    (run_dir / "summary.json").write_text(json.dumps(json_ready(summary), indent=1, allow_nan=False) + "\n")
    report(progress, 1.0, "done", "artifacts written")
    return summary


def execute_train_base(config: TrainBaseConfig, run_dir: Path, progress: ProgressFn | None = None,
                       cancel: CancelFlag | None = None, device: torch.device | None = None, *,
                       config_hash: str | None = None) -> dict[str, Any]:
    """Train a base checkpoint (:func:`~fairlin_core.train.train_base_checkpoint`) into ``run_dir`` and
    install a copy as ``<out_dir>/<name>.safetensors`` (+ .json); returns the summary. config_hash: given by a
    Ray task (the config was validated and hashed on the driver, which installs the checkpoint from the
    returned artifacts; nothing is installed here).

    Artifacts: model.safetensors + model.json, groups.csv (split, group, n, accuracy on test and, where
    the dataset has one, balanced), history.csv (stage, epoch, loss, val accuracy, lr) and summary.json
    (checkpoint path, test accuracy, training seconds, ...). Raises Cancelled when ``cancel`` is set;
    no checkpoint is installed then.
    """
    remote = config_hash is not None
    if not remote:
        config = config.validate()
        config_hash = config.canonical_hash()  # before installing: a validated config refuses an existing one
    prepare_output_file(config.checkpoint_path, [".json"], what="user checkpoint", hint="choose another name")
    started = time.perf_counter()
    run_dir = Path(run_dir)
    data = config.dataset
    weights, result = train_base_checkpoint(
        data["name"], config.model, out=run_dir / "model.safetensors", model_options=config.model_options,
        epochs=config.epochs, seed=config.seed, data_root=config.data_root, target=data["target"],
        group=data["group"], dataset_options=data["options"], dataset_seed=data["seed"], device=device,
        progress=scaled_progress(progress, 0.0, 0.95), cancel=cancel)
    check_cancel(cancel)
    report(progress, 0.95, "save", "writing artifacts")
    sidecar = read_sidecar(weights)
    groups = pd.DataFrame([{"split": split, **row} for split, evaluation in sidecar["evaluations"].items()
                           for row in evaluation["groups"]], columns=["split", "group", "n", "accuracy"])
    groups.to_csv(run_dir / "groups.csv", index=False)
    history = pd.DataFrame(sidecar["training"]["history"]).rename(columns={"train_loss": "loss"})
    history.insert(0, "stage", "train")
    history.to_csv(run_dir / "history.csv", index=False)
    check_cancel(cancel)
    installed = config.checkpoint_path if remote else install_checkpoint(weights, config.checkpoint_path)
    evaluation = sidecar["evaluation"]
    summary = {"kind": config.kind, "checkpoint": str(installed), "name": config.name,
               "config_hash": config_hash, "config": config.to_dict(), "relu_count": sidecar["relu_count"],
               "overall_accuracy": evaluation["overall_accuracy"], "test_accuracy": evaluation["overall_accuracy"],
               "worst_group_accuracy": evaluation["worst_group_accuracy"], "train_seconds": result["train_seconds"],
               "evaluations": sidecar["evaluations"], "seconds": round(time.perf_counter() - started, 3)}
    (run_dir / "summary.json").write_text(json.dumps(json_ready(summary), indent=1, allow_nan=False) + "\n")
    report(progress, 1.0, "done", f"saved {installed}")
    return summary


def install_checkpoint(weights: Path, target: Path) -> Path:
    """Copy ``weights`` and its sidecar to ``target`` (.safetensors) and its sidecar; FairLinError if a
    checkpoint of that name exists already. Both copies are staged first, then renamed into place, the
    sidecar last (a checkpoint without its sidecar is refused on load, never half-trusted)."""
    target = prepare_output_file(target, [".json"], what="user checkpoint", hint="choose another name")
    target.parent.mkdir(parents=True, exist_ok=True)
    pairs = [(weights, target), (sidecar_path(weights), sidecar_path(target))]
    partials = [dest.with_name(f".{dest.name}.{os.getpid()}.partial") for _, dest in pairs]
    try:
        for (source, _), partial in zip(pairs, partials):
            shutil.copyfile(source, partial)
        for (_, dest), partial in zip(pairs, partials):
            os.replace(partial, dest)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)
    return target


class RunLost(FairLinError):
    """An executor lost the means to run a job it had taken (its Ray instance or cluster went away): the run is
    left ``interrupted``, to be resumed, not ``failed``."""


@dataclass
class ExecutorJob:
    """One queued run as an executor sees it.

    start(): claim the run when work begins; returns the folder to write into, or None to skip it
    (cancelled while queued). progress: where :func:`execute` reports. cancel: the cooperative flag.
    finish(summary, error): the outcome (exactly one of the two is None; :class:`RunLost` leaves the run
    interrupted). config_hash: the validated config's ``canonical_hash()``, computed once by the manager.
    """

    run_id: str
    config: AnyConfig
    config_hash: str
    start: Callable[[], Path | None]
    progress: ProgressFn
    cancel: threading.Event
    finish: Callable[[dict[str, Any] | None, BaseException | None], None]


class Executor(ABC):
    """Runs :class:`ExecutorJob` s in the order submitted, ``workers`` at a time."""

    workers: int

    @abstractmethod
    def submit(self, job: ExecutorJob) -> None:
        """Queue ``job``; returns at once."""

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs (the queued ones are dropped); with ``wait``, return when running ones returned."""


class LocalThreadExecutor(Executor):
    """Worker threads in this process pulling from one FIFO queue.

    workers: None = one per CUDA GPU (worker i uses cuda:i), else 1 on CPU. Workers never touch the
    UI; they only call the job's callbacks.
    """

    def __init__(self, workers: int | None = None) -> None:
        gpus = torch.cuda.device_count()
        self.workers = workers if workers is not None else max(1, gpus)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise FairLinError(f"workers must be a positive integer, got {brief(workers)}")
        self._queue: queue.SimpleQueue[ExecutorJob | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"fairlin-worker-{i}", daemon=True,
                                          args=(torch.device(f"cuda:{i % gpus}") if gpus else torch.device("cpu"),))
                         for i in range(self.workers)]
        self._closed = False
        for thread in self._threads:
            thread.start()

    def submit(self, job: ExecutorJob) -> None:
        if self._closed:
            raise FairLinError("the executor is shut down; expected a running job manager")
        self._queue.put(job)

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _work(self, device: torch.device) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._closed:
                return
            run_dir = job.start()
            if run_dir is None:
                continue
            try:
                summary = execute(job.config, run_dir, job.progress, job.cancel, device)
            except BaseException as error:  # reported to the manager, which stores message + traceback
                job.finish(None, error)
            else:
                job.finish(summary, None)
