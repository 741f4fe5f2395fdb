"""A toy experiment in a child process, for a UI: :class:`ToyJob` and the child's entry point.

The child is ``python -m fairlin_core.toy.worker`` (the installed package; nothing sets PYTHONPATH).
Its messages are length-prefixed JSON frames with safetensors for arrays and weights; nothing is unpickled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import safetensors.numpy
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from ..data import DatasetBundle
from ..errors import FairLinError, check_seed
from ..limits import check_many
from ..models import build_model
from ..runtime import Progress
from .geometry import BoundaryGrid
from .training import ToyConfig, ToyResult, ToySweep, load_toy, run_toy, share_sweep


# ---------------------------------------------------------------------------------- background job

_spare_lock = threading.Lock()
_spare: subprocess.Popen | None = None


def _spawn_worker(warm_up: bool = False) -> subprocess.Popen:
    """A child Python that imports the engine (and with ``warm_up`` runs a tiny job to pay torch's
    one-off initialisation, about 2 s), then waits on stdin for one job (see :func:`_job_child`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "fairlin_core.toy.worker"] + (["--warm-up"] if warm_up else [])
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def prewarm() -> None:
    """Start a worker process now, unless one is waiting already, so the next :class:`ToyJob` starts
    without the torch import and first-run initialisation (4-9 s on 2 busy cores). An unused worker
    exits when this process does."""
    global _spare
    with _spare_lock:
        if _spare is None or _spare.poll() is not None:
            _spare = _spawn_worker(warm_up=True)


def _take_worker() -> subprocess.Popen:
    global _spare
    with _spare_lock:
        worker, _spare = _spare, None
    return worker if worker is not None and worker.poll() is None else _spawn_worker()


class ToyJob:
    """Runs :func:`run_toy` (or, with ``shares``, :func:`share_sweep`) in a child Python process, with a daemon
    thread here receiving its reports.

    A process, not a thread, trains: tiny torch ops release and retake the GIL so often that a busy UI
    thread slows an in-process trainer several fold (measured 7x). The child (``python -c``; importing
    torch and the engine takes 2-6 s, saved by :func:`prewarm`) trains single-threaded. Both ways the
    messages are length-prefixed JSON frames (:func:`_write_frame`): the job (config fields, seeds,
    preview_every) on the child's stdin; progress reports with boundary previews, then one outcome
    (result or error) on its stdout. Arrays and trained weights travel as base64 safetensors, tables as
    columns, and the data are reloaded here from the config (checked against the child's digest);
    nothing is unpickled. :meth:`cancel` terminates the child (nothing half-done is kept); a child
    whose parent is gone stops at its next report. Every method is thread-safe and never blocks on
    training; the UI keeps one in its session state, polls :meth:`snapshot` and calls :meth:`cancel`.
    Nothing here touches a UI framework.
    """

    def __init__(self, config: ToyConfig, seeds: Sequence[int], preview_every: int = 100,
                 shares: Sequence[float] | None = None) -> None:
        config.validate()
        self.config, self.preview_every = config, preview_every
        self.seeds = [check_seed(s) for s in check_many(seeds, "seeds", "seeds")]
        self.shares = None if shares is None else [float(s) for s in check_many(shares, "shares", "budgets")]
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"fraction": 0.0, "message": "starting (importing torch)", "loss": [],
                                       "previews": {}, "result": None, "error": None, "cancelled": False,
                                       "running": True}
        self._process: subprocess.Popen | None = None
        self._cancel_requested = False
        self._thread = threading.Thread(target=self._receive, name="fairlin-toy-receiver", daemon=True)

    def start(self) -> "ToyJob":
        """Hand the job to a worker process (the prewarmed one if any, see :func:`prewarm`)."""
        with self._lock:
            if self._cancel_requested:
                self._state.update(running=False, cancelled=True, message="stopped")
                return self
            self._process = _take_worker()
            _write_frame(self._process.stdin, {"config": asdict(self.config), "seeds": self.seeds,
                                               "preview_every": self.preview_every, "shares": self.shares})
            self._process.stdin.close()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop the run (before or after :meth:`start`); it ends with ``cancelled`` True and no result."""
        with self._lock:
            self._cancel_requested = True
            if self._process is not None:
                self._process.terminate()  # a no-op once the child has been reaped

    def join(self, timeout: float | None = None) -> None:
        """Wait until the job ended and its outcome is in :meth:`snapshot`."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        with self._lock:
            return bool(self._state["running"])

    def snapshot(self) -> dict[str, Any]:
        """fraction, message, running, cancelled, error (message or None), result (:class:`ToyResult`, or
        :class:`ToySweep` for a sweep, or None), loss (DataFrame seed, model, step, loss so far), previews ({model: (seed, BoundaryGrid)})."""
        with self._lock:
            state = dict(self._state)
            state["loss"] = pd.DataFrame(list(state["loss"]), columns=["seed", "model", "step", "loss"])
            state["previews"] = dict(state["previews"])
        return state

    def _on_progress(self, update: Progress) -> None:
        metrics = update.metrics
        with self._lock:
            self._state["fraction"] = update.fraction
            self._state["message"] = update.message
            if "loss" in metrics and "step" in metrics:
                self._state["loss"].append((metrics["seed"], metrics["model"], metrics["step"], metrics["loss"]))
            if "boundary" in metrics:
                self._state["previews"][metrics["model"]] = (metrics["seed"], metrics["boundary"])

    def _receive(self) -> None:
        outcome: dict[str, Any] = {}
        with self._process.stdout as stream:
            while not outcome:
                try:
                    message = _read_frame(stream)
                    if message is None:  # end of stream or a truncated frame: the child is gone
                        break
                    kind, payload = message
                    if kind == "progress":
                        self._on_progress(_decode_progress(payload))
                    elif kind == "result":
                        outcome["result"] = _decode_result(payload)
                    elif kind == "sweep":
                        outcome["result"] = _decode_sweep(payload)
                    else:
                        outcome["error"] = str(payload)
                except Exception as error:  # noqa: BLE001 - a malformed message ends the job with a clear error
                    outcome = {"error": f"unreadable message from the training process: {error!r}"}
        code = self._process.wait()
        with self._lock:
            if not outcome:
                outcome = ({"cancelled": True} if self._cancel_requested else
                           {"error": f"the training process ended unexpectedly (exit code {code}; see its log)"})
            self._state.update(outcome, running=False, message="done" if "result" in outcome else "stopped")


def _job_child(warm_up: bool = False) -> None:
    """Entry of :class:`ToyJob`'s child: read the job from stdin, train, write messages to stdout.

    The original stdout carries the messages and fd 1 is pointed at stderr, so stray prints cannot
    corrupt the stream. When the parent is gone the next message fails and the child exits.
    """
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    torch.set_num_threads(1)  # a tiny full-batch MLP is fastest single-threaded, and the UI keeps a core
    if warm_up:
        run_toy(ToyConfig(n=100, steps=3), [0])
    job = _read_frame(sys.stdin.buffer)
    if job is None:  # a prewarmed worker whose parent ended without giving it a job
        return

    def send(kind: str, payload: Any) -> None:
        _write_frame(channel, [kind, payload])
    try:
        try:
            def progress(update: Progress) -> None:
                send("progress", _encode_progress(update))
            config = ToyConfig(**job["config"])
            if job.get("shares") is not None:
                outcome = ("sweep", _encode_sweep(share_sweep(config, job["shares"], job["seeds"], progress=progress)))
            else:
                result = run_toy(config, job["seeds"], preview_every=job["preview_every"], progress=progress)
                outcome = ("result", _encode_result(result))
        except FairLinError as error:
            outcome = ("error", str(error))
        except BrokenPipeError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure becomes a message for the UI, not a dead job
            outcome = ("error", f"training failed: {error!r}")
        send(*outcome)
    except BrokenPipeError:  # the parent is gone: nobody is left to report to
        os._exit(1)


# ------------------------------------------------------------------------------- child messages
# A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON. Arrays (boundary grids)
# and model weights are base64 safetensors inside the JSON; tables are columns with their dtypes.

def _write_frame(stream: Any, message: Any) -> None:
    data = json.dumps(message, default=_plain).encode("utf-8")
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


def _read_frame(stream: Any) -> Any:
    """The next message on ``stream``, or None at its end (a truncated frame counts as the end)."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    data = stream.read(size)
    return json.loads(data.decode("utf-8")) if len(data) == size else None


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars (e.g. a metric computed with numpy)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode_grid(grid: BoundaryGrid) -> str:
    # safetensors stores an array's memory as is, so strided views are made contiguous first
    return _b64(safetensors.numpy.save({name: np.ascontiguousarray(array) for name, array in vars(grid).items()}))


def _encode_progress(update: Progress) -> dict[str, Any]:
    """A report as JSON; the ``boundary`` metric (a :class:`BoundaryGrid`) as safetensors."""
    metrics = {key: _encode_grid(value) if key == "boundary" else value for key, value in update.metrics.items()}
    return {"fraction": update.fraction, "stage": update.stage, "message": update.message, "metrics": metrics}


def _decode_progress(data: dict[str, Any]) -> Progress:
    metrics = {key: BoundaryGrid(**safetensors.numpy.load(base64.b64decode(value))) if key == "boundary" else value
               for key, value in data["metrics"].items()}
    return Progress(data["fraction"], data["stage"], data["message"], metrics)


def _encode_table(table: pd.DataFrame) -> dict[str, Any]:
    return {"columns": [str(c) for c in table.columns], "dtypes": [str(t) for t in table.dtypes],
            "data": [table[c].tolist() for c in table.columns]}


def _decode_table(data: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(values, dtype=dtype)
                         for column, dtype, values in zip(data["columns"], data["dtypes"], data["data"])})


def _bundle_digest(bundle: DatasetBundle) -> str:
    """SHA-256 over every split's x, y and group, to check that data reloaded elsewhere are the same."""
    digest = hashlib.sha256()
    for name, split in bundle.splits.items():
        digest.update(name.encode())
        for tensor in (split.x, split.y, split.group):
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _encode_result(result: ToyResult) -> dict[str, Any]:
    """A :class:`ToyResult` as JSON: config, seeds, tables, each model's full state dict (masks
    included) as safetensors, and a digest of each seed's data (the data themselves are reloaded)."""
    return {"config": asdict(result.config), "seeds": result.seeds,
            "tables": {name: _encode_table(getattr(result, name))
                       for name in ("accuracy", "geometry", "margins", "history")},
            "models": [[seed, kind, _b64(save_safetensors_bytes(model.state_dict()))]
                       for (seed, kind), model in result.models.items()],
            "digests": {str(seed): _bundle_digest(bundle) for seed, bundle in result.bundles.items()}}


def _decode_result(data: dict[str, Any]) -> ToyResult:
    """Rebuild :func:`_encode_result`'s message: the data reloaded with :func:`load_toy` (and checked),
    the models freshly built from the config's spec with the sent weights loaded."""
    config = ToyConfig(**data["config"])
    seeds = [int(seed) for seed in data["seeds"]]
    bundles = {seed: load_toy(config, seed) for seed in seeds}
    for seed, bundle in bundles.items():
        if _bundle_digest(bundle) != data["digests"][str(seed)]:
            raise FairLinError(f"the reloaded data of seed {seed} differ from the training process's")
    models = {}
    with torch.random.fork_rng(devices=[]):  # building a model draws initial weights; leave the caller's RNG alone
        for seed, kind, weights in data["models"]:
            model = build_model(config.model_spec())
            model.load_state_dict(load_safetensors_bytes(base64.b64decode(weights)))
            models[(int(seed), kind)] = model.eval()
    tables = {name: _decode_table(table) for name, table in data["tables"].items()}
    return ToyResult(config, seeds, tables["accuracy"], tables["geometry"], tables["margins"], tables["history"],
                     bundles, models)


def _encode_sweep(sweep: ToySweep) -> dict[str, Any]:
    return {"config": asdict(sweep.config), "seeds": sweep.seeds, "shares": sweep.shares,
            "table": _encode_table(sweep.table)}


def _decode_sweep(data: dict[str, Any]) -> ToySweep:
    return ToySweep(ToyConfig(**data["config"]), [int(s) for s in data["seeds"]], [float(s) for s in data["shares"]],
                    _decode_table(data["table"]))


if __name__ == "__main__":
    _job_child(warm_up="--warm-up" in sys.argv[1:])
