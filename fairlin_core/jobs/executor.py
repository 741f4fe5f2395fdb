"""Where jobs run: :func:`execute` does one run's work; an :class:`Executor` decides where and when.

The manager hands an executor :class:`ExecutorJob` s; an executor calls ``job.start()`` when it
begins one (which returns the folder to write into, or None if the job was cancelled while queued),
runs :func:`execute`, and reports the outcome with ``job.finish(summary, error)``.
:class:`LocalThreadExecutor` does this on worker threads in this process; a distributed backend
would implement the same two methods and run :func:`execute` elsewhere.
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

from ..audit import run_audit, write_audit_csvs
from ..checkpoints import load_checkpoint, load_dataset_for, read_sidecar, sidecar_path
from ..data import load_dataset
from ..errors import FairLinError
from ..finetune import FinetuneConfig, MitigationConfig, mitigation_factory
from ..linearize import LinearizeOptions, SNLConfig, linearize
from ..linearize.output import result_summary, save_linearized
from ..runtime import CancelFlag, ProgressFn, check_cancel, default_device, json_ready, report, scaled_progress
from ..train import train_base_checkpoint
from .config import AnyConfig, JobConfig, TrainBaseConfig


def _dataset(config: JobConfig, checkpoint: Any):
    """The checkpoint's own dataset, or the override (checked against the model's input and classes)."""
    if config.dataset is None:
        return load_dataset_for(checkpoint.sidecar, config.data_root)
    data = config.dataset
    bundle = load_dataset(data["name"], data_root=config.data_root, seed=data["seed"], target=data["target"],
                          group=data["group"], **data["options"])
    spec = checkpoint.spec
    if tuple(bundle.input_shape) != tuple(spec.input_shape) or bundle.num_classes != spec.num_classes:
        raise FairLinError(f"checkpoint {checkpoint.path} expects input {tuple(spec.input_shape)} with "
                           f"{spec.num_classes} classes, but dataset {bundle.name} has input {bundle.input_shape} "
                           f"with {bundle.num_classes} classes; expected the dataset the checkpoint was trained on")
    return bundle


def execute(config: AnyConfig, run_dir: Path, progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
            device: torch.device | None = None) -> dict[str, Any]:
    """Run one job and write its artifacts into ``run_dir``; returns the summary (also in summary.json).

    A :class:`TrainBaseConfig` goes to :func:`execute_train_base`; what follows is the linearize job.

    Artifacts: model.safetensors + model.json (the linearized checkpoint), groups.csv (split, group, n,
    base_accuracy, linearized_accuracy, accuracy), history.csv (per epoch of every stage), audit/*.csv
    (the requested diagnostics, on the test split) and summary.json. Raises Cancelled when ``cancel``
    is set (checked every batch); ``run_dir`` is then incomplete and must be discarded.
    """
    if isinstance(config, TrainBaseConfig):
        return execute_train_base(config, run_dir, progress, cancel, device)
    config = config.validate()
    started = time.perf_counter()
    device = device or default_device()
    checkpoint = load_checkpoint(config.checkpoint)
    bundle = _dataset(config, checkpoint)
    mitigation = MitigationConfig(**config.mitigation) if config.mitigation is not None else None
    options = LinearizeOptions(snl=SNLConfig(**config.snl), finetune=FinetuneConfig(**config.finetune))
    split_at = 0.7 if config.diagnostics else 0.95
    result = linearize(checkpoint.model, checkpoint.spec, bundle, config.method, config.budget, options=options,
                       seed=config.seed, device=device, progress=scaled_progress(progress, 0.0, split_at), cancel=cancel,
                       objective_factory=mitigation_factory(bundle, mitigation))
    check_cancel(cancel)
    report(progress, split_at, "save", "writing artifacts")
    config_hash = config.canonical_hash()
    run_dir = Path(run_dir)
    weights = save_linearized(result, run_dir, bundle, base_checkpoint=checkpoint.path,
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
                       cancel: CancelFlag | None = None, device: torch.device | None = None) -> dict[str, Any]:
    """Train a base checkpoint (:func:`~fairlin_core.train.train_base_checkpoint`) into ``run_dir`` and
    install a copy as ``<out_dir>/<name>.safetensors`` (+ .json); returns the summary.

    Artifacts: model.safetensors + model.json, groups.csv (split, group, n, accuracy on test and, where
    the dataset has one, balanced), history.csv (stage, epoch, loss, val accuracy, lr) and summary.json
    (checkpoint path, test accuracy, training seconds, ...). Raises Cancelled when ``cancel`` is set;
    no checkpoint is installed then.
    """
    config = config.validate()
    config_hash = config.canonical_hash()  # before installing: a validated config refuses an existing checkpoint
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
    installed = install_checkpoint(weights, config.checkpoint_path)
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
    """Copy ``weights`` and its sidecar to ``target`` (.safetensors) and its sidecar, each atomically (the weights
    first); FairLinError if a checkpoint of that name exists already."""
    target.parent.mkdir(parents=True, exist_ok=True)
    pairs = [(weights, target), (sidecar_path(weights), sidecar_path(target))]
    if any(dest.exists() for _, dest in pairs):
        raise FairLinError(f"a user checkpoint named {target.stem} already exists in {target.parent}; "
                           f"choose another name")
    for source, dest in pairs:
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
    return target


@dataclass
class ExecutorJob:
    """One queued run as an executor sees it.

    start(): claim the run when work begins; returns the folder to write into, or None to skip it
    (cancelled while queued). progress: where :func:`execute` reports. cancel: the cooperative flag.
    finish(summary, error): the outcome (exactly one of the two is None).
    """

    run_id: str
    config: AnyConfig
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
            raise FairLinError(f"workers must be a positive integer, got {workers!r}")
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
