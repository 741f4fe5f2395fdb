"""View models of the dashboard pages (Models & data, Linearize, the jobs panel); no streamlit here.

Everything a page shows or does beyond drawing is a function of this module, so the CLI and tests
can do the same: checkpoint overviews (shipped + user), validated checkpoint uploads, budget
previews (the DeepReDuce configuration a budget maps to), job configs from the form's choices, the
jobs panel rows with live curves, and base-model training jobs run on a background thread.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .catalog import SHIPPED_CHECKPOINTS, checkpoint_group_table, checkpoint_table
from .checkpoints import load_checkpoint, read_sidecar
from .errors import FairLinError
from .finetune import DEFAULT_MU
from .jobs import JobConfig, JobManager, JobStatus
from .jobs.store import ACTIVE, resolve_store_root
from .linearize import METHODS, nearest_configuration, resolve_budget
from .models import ModelSpec
from .runtime import Cancelled, Progress

USER_CHECKPOINTS = "user_checkpoints"
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_SIDECAR_BYTES = 1024 * 1024
MITIGATION_MODES = ("off", "on", "both")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


# -- checkpoints -------------------------------------------------------------------------------------
def user_checkpoint_dir(store_root: str | os.PathLike[str] | None = None) -> Path:
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


def accept_upload(weights_name: str, weights: bytes, sidecar: bytes, dest_dir: str | Path,
                  max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Validate an uploaded safetensors checkpoint + JSON sidecar and only then store it in ``dest_dir``.

    Both files are written to a temporary folder and loaded with :func:`load_checkpoint` (safetensors
    only, never unpickled; the weights must match the architecture in the sidecar). Returns the stored
    weights path; FairLinError with a readable reason when the upload is refused.
    """
    name = Path(weights_name or "").name
    if not name.endswith(".safetensors"):
        raise FairLinError(f"{name or 'the weights file'} is not a .safetensors file; FairLin accepts only "
                           f"safetensors weights with a JSON sidecar (never pickles or torch.save files)")
    stem = name[: -len(".safetensors")]
    if not _SAFE_NAME.fullmatch(stem):
        raise FairLinError(f"checkpoint name {stem!r} is not allowed; expected letters, digits, '_', '-' or '.' "
                           f"(at most 100 characters)")
    if len(weights) > max_bytes:
        raise FairLinError(f"{name} is {len(weights) / 2**20:.1f} MiB; the upload limit is {max_bytes / 2**20:.0f} MiB")
    if not weights:
        raise FairLinError(f"{name} is empty; expected a complete safetensors file")
    if len(sidecar) > MAX_SIDECAR_BYTES:
        raise FairLinError(f"the sidecar is {len(sidecar) / 2**20:.1f} MiB; expected a small JSON file (at most "
                           f"{MAX_SIDECAR_BYTES / 2**20:.0f} MiB)")
    dest_dir = Path(dest_dir)
    target = dest_dir / name
    if target.exists() or target.with_suffix(".json").exists():
        raise FairLinError(f"a user checkpoint named {stem} already exists; rename the file to upload it as well")
    with tempfile.TemporaryDirectory(prefix="fairlin-upload-") as temp:
        staged = Path(temp) / name
        staged.write_bytes(weights)
        staged.with_suffix(".json").write_bytes(sidecar)
        try:
            checkpoint = load_checkpoint(staged)
        except FairLinError as error:
            raise FairLinError("upload refused: " + str(error).replace(str(staged.parent) + os.sep, "")) from None
        if not isinstance(checkpoint.sidecar.get("relu_count"), int):
            from .models import relu_count
            data = json.loads(sidecar)
            data["relu_count"] = relu_count(checkpoint.model)
            staged.with_suffix(".json").write_text(json.dumps(data, indent=1))
        dest_dir.mkdir(parents=True, exist_ok=True)
        partial = dest_dir / f".{stem}.{uuid.uuid4().hex}.partial"
        shutil.copyfile(staged.with_suffix(".json"), partial.with_suffix(".json"))
        shutil.copyfile(staged, partial)
        os.replace(partial.with_suffix(".json"), target.with_suffix(".json"))
        os.replace(partial, target)
    return target


# -- linearize form ------------------------------------------------------------------------------------
def base_relu_count(checkpoint: str | Path) -> int:
    """The base checkpoint's ReLU count as recorded in its sidecar (counted from the model if absent)."""
    sidecar = read_sidecar(Path(checkpoint))
    count = sidecar.get("relu_count")
    if isinstance(count, int) and count > 0:
        return count
    from .models import relu_count
    return relu_count(load_checkpoint(checkpoint).model)


def budget_preview(checkpoint: str | Path, method: str, budget: int) -> dict[str, Any]:
    """What a budget means for ``method``: the ReLUs kept and, for deepreduce, the configuration used.

    Returns {"base_count", "requested", "count", "percent", "text"}.
    """
    if method not in METHODS:
        raise FairLinError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    base = base_relu_count(checkpoint)
    requested = resolve_budget(int(budget), base)
    count, text = requested, f"{method} keeps exactly {requested:,} of {base:,} ReLUs ({100 * requested / base:.2f}%)"
    if method == "snl":
        text = (f"SNL learns masks down to {requested:,} of {base:,} ReLUs ({100 * requested / base:.2f}%), "
                f"then finetunes with knowledge distillation")
    elif method == "random":
        text = f"random placement keeps {requested:,} of {base:,} ReLUs ({100 * requested / base:.2f}%) at random sites"
    elif method == "deepreduce":
        spec = ModelSpec.from_dict(read_sidecar(Path(checkpoint))["model"])
        config, count = nearest_configuration(spec, requested)
        text = (f"DeepReDuce configuration: {config.describe()} — {count:,} ReLUs "
                f"({100 * count / base:.2f}% of {base:,}); nearest to the requested {requested:,}")
    return {"base_count": base, "requested": requested, "count": count, "percent": 100 * count / base, "text": text}


def job_configs(checkpoint: str | Path, method: str, budget: int | float | str, seeds: list[int], *,
                snl_epochs: int, finetune_epochs: int, mitigation: str = "off", mu: float = DEFAULT_MU,
                group: str | None = None, data_root: str | None = None) -> list[JobConfig]:
    """One validated JobConfig per seed and mitigation setting (``off``, ``on`` or ``both``).

    group: the protected attribute; when it differs from the checkpoint's own, the runs use the
    checkpoint's dataset grouped by ``group`` instead.
    """
    if mitigation not in MITIGATION_MODES:
        raise FairLinError(f"mitigation must be one of {', '.join(MITIGATION_MODES)}, got {mitigation!r}")
    if not seeds:
        raise FairLinError("no seeds chosen; expected at least one seed")
    dataset = None
    own = read_sidecar(Path(checkpoint)).get("dataset") or {}
    if group and own.get("name") and group != own.get("group"):
        dataset = {"name": own["name"], "options": {k: v for k, v in (own.get("options") or {}).items()
                                                     if k not in ("seed", "target", "group")},
                   "target": own.get("target"), "group": group, "seed": (own.get("options") or {}).get("seed", 0)}
    settings = {"off": [None], "on": [{"mu": float(mu)}], "both": [None, {"mu": float(mu)}]}[mitigation]
    configs = []
    for seed in seeds:
        for setting in settings:
            configs.append(JobConfig(checkpoint=str(checkpoint), method=method, budget=budget, seed=int(seed),
                                     snl={"epochs": int(snl_epochs)}, finetune={"epochs": int(finetune_epochs)},
                                     mitigation=setting, dataset=dataset, data_root=data_root or None).validate())
    return configs


def submit_jobs(manager: JobManager, configs: list[JobConfig]) -> list[str]:
    """Submit every config; identical configs already done or in flight return their run ids."""
    return [manager.submit(config) for config in configs]


# -- jobs panel ------------------------------------------------------------------------------------------
def job_label(config: dict[str, Any]) -> str:
    """Short human label of a run config, e.g. ``digits_resnet18 · snl · 10% · seed 0 · mitigated mu=0.01``."""
    budget = config.get("budget")
    if isinstance(budget, float) and 0 < budget <= 1:
        budget = f"{100 * budget:g}%"
    mitigation = config.get("mitigation")
    text = (f"{Path(str(config.get('checkpoint', '?'))).stem} · {config.get('method')} · {budget} ReLUs · "
            f"seed {config.get('seed')}")
    return text + (f" · mitigated mu={mitigation['mu']:g}" if mitigation else "")


class CurveRecorder:
    """Per-job series of the metrics seen in progress reports (polled), for live loss / ReLU curves."""

    def __init__(self) -> None:
        self._series: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def observe(self, status: JobStatus) -> None:
        if not status.metrics:
            return
        row = {"stage": status.stage, "message": status.message, **{k: v for k, v in status.metrics.items()
                                                                      if isinstance(v, (int, float))}}
        with self._lock:
            series = self._series.setdefault(status.id, [])
            if not series or series[-1] != row:
                series.append(row)

    def curve(self, job_id: str) -> pd.DataFrame:
        with self._lock:
            rows = list(self._series.get(job_id, []))
        table = pd.DataFrame(rows)
        if not table.empty:
            table.insert(0, "step", range(1, len(table) + 1))
        return table


_recorders: dict[int, CurveRecorder] = {}


def recorder_for(manager: Any) -> CurveRecorder:
    """The process-wide curve recorder of ``manager``."""
    return _recorders.setdefault(id(manager), CurveRecorder())


def run_history(manager: JobManager, run_id: str) -> pd.DataFrame:
    """history.csv of a finished run (per-epoch loss, ReLU count, accuracy), or an empty table."""
    try:
        run = manager.store.get_run(run_id)
    except (FairLinError, OSError, ValueError):
        return pd.DataFrame()
    return run.tables.get("history", pd.DataFrame())


def jobs_overview(manager: JobManager, limit: int = 30) -> list[dict[str, Any]]:
    """Rows of the jobs panel, newest first: id, label, status, fraction, stage, message, error, metrics.

    Jobs queued by this process come with live progress; earlier runs of the store are listed from it.
    """
    recorder = recorder_for(manager)
    seen, rows = set(), []
    for status in manager.jobs():
        recorder.observe(status)
        seen.add(status.id)
        rows.append(_row(status.id, status.status, status.fraction, status.stage, status.message, status.error,
                         status.metrics, status.config, status.created))
    for run in manager.store.list_runs():
        if run["id"] in seen:
            continue
        error = manager.store.row(run["id"])["error"] if run["status"] != "done" else None
        rows.append(_row(run["id"], run["status"], 1.0 if run["status"] == "done" else 0.0, run["status"],
                         error or "", error, {}, run["config"], run["created"]))
    rows.sort(key=lambda r: r["created"] or "", reverse=True)
    return rows[:limit]


def _row(run_id: str, status: str, fraction: float, stage: str, message: str, error: str | None,
         metrics: dict[str, Any], config: dict[str, Any], created: str | None) -> dict[str, Any]:
    return {"id": run_id, "label": job_label(config), "status": status, "fraction": float(fraction),
            "stage": stage, "message": message, "error": readable_error(error) if status == "failed" else None,
            "metrics": metrics, "config": config, "created": created, "active": status in ACTIVE}


def readable_error(error: str | None) -> str:
    """The first meaningful line of a stored error, never a traceback."""
    if not error:
        return "the job failed without a message"
    lines = [line for line in str(error).splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        lines = lines[-1:]
    return lines[0] if lines else "the job failed without a message"


def jobs_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many of ``rows`` are in each status."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


# -- base training jobs -------------------------------------------------------------------------------------
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
        from .data import load_dataset
        from .models import resolve_spec
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise FairLinError(f"epochs must be a positive integer, got {epochs!r}")
        name = name or f"{dataset}_{model}_w{width}_s{seed}"
        if not _SAFE_NAME.fullmatch(name):
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
        from .base_training import train_base
        from .checkpoints import save_checkpoint
        from .evaluation import base_sidecar_metadata

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
