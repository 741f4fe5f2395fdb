"""View model of the jobs panel: rows with live progress and curves, readable errors, counts. No streamlit here."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from fairlin_core.jobs import ACTIVE, TRAIN_BASE, JobManager, JobStatus


def job_label(config: dict[str, Any]) -> str:
    """Short human label of a run config, e.g. ``digits_resnet18 · snl · 10% · seed 0 · mitigated mu=0.01``, or
    for a train-base job ``train resnet18 w16 on digits · seed 0``."""
    if config.get("kind") == TRAIN_BASE:
        dataset = config.get("dataset")
        dataset = dataset.get("name", "?") if isinstance(dataset, dict) else dataset
        width = (config.get("model_options") or {}).get("width")
        return (f"train {config.get('model')}{f' w{width}' if width is not None else ''} on {dataset} · "
                f"seed {config.get('seed')}")
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
        if "train_loss" in row:  # base training reports train_loss; the curve plots loss
            row.setdefault("loss", row["train_loss"])
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
    except Exception:  # a damaged run folder shows no curve rather than a traceback
        return pd.DataFrame()
    return run.tables.get("history", pd.DataFrame())


def job_kind(config: dict[str, Any]) -> str:
    """``linearize`` or ``train-base``."""
    return config.get("kind") or "linearize"


def jobs_overview(manager: JobManager, limit: int = 30, kind: str | None = None) -> list[dict[str, Any]]:
    """Rows of the jobs panel, newest first: id, label, kind, status, fraction, stage, message, error, metrics,
    checkpoint (what a train-base job writes; None for linearize jobs), active, eta_seconds (running jobs),
    overall_accuracy and worst_group_accuracy (test split, fractions; done jobs).

    Jobs queued by this process come with live progress; earlier runs of the store are listed from it.
    kind: only jobs of this kind (None = all).
    """
    recorder = recorder_for(manager)
    stored = {run["id"]: run for run in manager.store.list_runs()}
    seen, rows = set(), []
    for status in manager.jobs():
        recorder.observe(status)
        seen.add(status.id)
        rows.append(_row(status.id, status.status, status.fraction, status.stage, status.message, status.error,
                         status.metrics, status.config, status.created, status.started, stored.get(status.id)))
    for run in stored.values():
        if run["id"] in seen:
            continue
        error = manager.store.row(run["id"])["error"] if run["status"] != "done" else None
        rows.append(_row(run["id"], run["status"], 1.0 if run["status"] == "done" else 0.0, run["status"],
                         error or "", error, {}, run["config"], run["created"], None, run))
    if kind is not None:
        rows = [row for row in rows if row["kind"] == kind]
    rows.sort(key=lambda r: r["created"] or "", reverse=True)
    return rows[:limit]


def eta_seconds(started: str | None, fraction: float, now: datetime | None = None) -> float | None:
    """Seconds left if the job keeps its pace so far (elapsed x (1 - fraction) / fraction); None before it
    has started or shown progress."""
    if not started or fraction <= 0.01:
        return None
    elapsed = ((now or datetime.now(timezone.utc)) - datetime.fromisoformat(started)).total_seconds()
    return max(0.0, elapsed * (1.0 - fraction) / fraction)


def _row(run_id: str, status: str, fraction: float, stage: str, message: str, error: str | None,
         metrics: dict[str, Any], config: dict[str, Any], created: str | None, started: str | None,
         stored: dict[str, Any] | None) -> dict[str, Any]:
    checkpoint = None
    if job_kind(config) == TRAIN_BASE and config.get("out_dir") and config.get("name"):
        checkpoint = str(Path(config["out_dir"]) / f"{config['name']}.safetensors")
    return {"id": run_id, "label": job_label(config), "kind": job_kind(config), "checkpoint": checkpoint,
            "status": status, "fraction": float(fraction),
            "stage": stage, "message": message, "error": readable_error(error) if status == "failed" else None,
            "metrics": metrics, "config": config, "created": created, "active": status in ACTIVE,
            "eta_seconds": eta_seconds(started, fraction) if status == "running" else None,
            "overall_accuracy": (stored or {}).get("overall_accuracy") if status == "done" else None,
            "worst_group_accuracy": (stored or {}).get("worst_group_accuracy") if status == "done" else None}


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
