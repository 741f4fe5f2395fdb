"""The run store: a SQLite index of runs keyed by config hash, plus one artifact folder per run.

Configs are stored sparse: the snl/finetune/mitigation options that equal their defaults are left
out of a row, and the defaults themselves are stored once in a ``defaults`` table the row points to,
so listing thousands of runs parses little JSON yet reads back exactly the options each run had.

Layout under the root (default ``./fairlin_runs``, else ``$FAIRLIN_STORE``, else the ``root`` given)::

    runs.sqlite                 the index (rollback journal; safe across threads and processes, and readable
                                in a read-only folder without writing anything)
    runs/<id>/                  a finished run: model.safetensors + model.json, groups.csv,
                                history.csv, summary.json, audit/*.csv, manifest.json
                                (a train-base run: its base checkpoint, groups.csv with test accuracy
                                per group, history.csv of training, summary.json)
    user_checkpoints/           uploaded and trained base checkpoints (train-base runs install here)
    staging/<id>-<pid>-<rand>/  a run being written; renamed to runs/<id>/ when complete

A run id is the first 16 hex digits of its config hash, so a config always maps to the same id.
A run is marked ``done`` only after its folder is complete: files are written to staging, then
``manifest.json`` (every file with its size and sha256) is written last, then the folder is renamed
into place, then the row is updated. Reading a run checks it against its manifest; a missing or
corrupt file marks only that run ``damaged``. Runs left queued or running by a process that no
longer exists are marked ``interrupted`` when a store is opened (and when such a row is read).

A store opened with ``read_only=True`` (listing and showing runs) never writes: no folder is created, the
index is opened in SQLite's read-only mode, and dead or damaged runs are reported without being marked (every
reader reports a run of a dead process ``interrupted``, listing and showing alike). The one exception is a
write that a killed process left unfinished (a hot ``runs.sqlite-journal``): SQLite must roll it back before
anyone can read the index, so any store that can write the folder lets it do so (the index then reads as
before that write); a store that cannot write it is refused with one line saying so. A writable store refuses a
folder it cannot write with one clear line. An index that is missing, empty, truncated, not a regular file,
not SQLite or of another layout while run folders exist is refused (nothing is recomputed or replaced) until
:meth:`RunStore.rebuild_index` (``fairlin runs --rebuild-index``) rebuilds it from the folders' manifests
and summaries.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import FairLinError, brief, clip
from ..outputs import check_writable
from ..runtime import comma_list, file_digest, pid_alive
from ..audits.results import lagrangian_mu, mitigation_label
from .config import TRAIN_BASE, option_defaults
from .paths import resolve_store_root, user_checkpoint_dir  # noqa: F401  (re-exported)

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted", "damaged")
ACTIVE = ("queued", "running")
MANIFEST = "manifest.json"
ID_LENGTH = 16
INDEX = "runs.sqlite"
JOURNAL = f"{INDEX}-journal"  # SQLite's rollback journal: present while a write is under way (or was cut off)
INTERRUPTED = "the process running it stopped before it finished; requeue it to finish it"
LIST_COLUMNS = ("id", "status", "config", "created", "finished", "relu_count", "overall_accuracy",
                "worst_group_accuracy")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    relu_count INTEGER,
    overall_accuracy REAL,
    worst_group_accuracy REAL,
    error TEXT,
    traceback TEXT,
    owner_pid INTEGER,
    owner TEXT,
    defaults TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS defaults (
    digest TEXT PRIMARY KEY,
    options TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_status_created ON runs (status, created);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created, id);
"""


def now() -> str:
    """UTC time as ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first); [] where unknown (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str:
    """The kernel's start time of process ``pid`` (Linux, clock ticks since boot); "" where unknown."""
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def process_owner(pid: int | None = None) -> str:
    """``host:pid:start`` naming a live process uniquely (a reused pid has another start time)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by :func:`process_owner` still runs (other hosts count as alive)."""
    if not owner:
        return False
    host, pid_text, start = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    pid = int(pid_text)
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed and not yet reaped by its parent: dead
        return False
    return pid_alive(pid) and _start_time(pid) == start


@dataclass
class Run:
    """One run as read back: its index row, summary and tables (empty unless done and intact).

    tables: ``groups`` (split, group, n, base_accuracy, linearized_accuracy, accuracy), ``history``
    (one row per epoch of every stage) and ``audit:<name>`` for every diagnostics table.
    """

    id: str
    status: str
    config: dict[str, Any]
    created: str
    started: str | None
    finished: str | None
    relu_count: int | None
    overall_accuracy: float | None
    worst_group_accuracy: float | None
    error: str | None
    traceback: str | None
    path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The ``runs --json`` row: id, status, config, created, finished, relu_count, overall and worst-group
        accuracy."""
        return {name: getattr(self, name) for name in LIST_COLUMNS}


@dataclass(frozen=True)
class Claim:
    """What :meth:`RunStore.claim` decided: ``run`` = True when the caller now owns a queued run to execute."""

    id: str
    run: bool


class RunStore:
    """The index and artifact folders under ``root`` (see the module docstring); thread- and process-safe."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        self.root = resolve_store_root(root)
        self.read_only = read_only
        self.runs_dir = self.root / "runs"
        self.staging_root = self.root / "staging"
        self.path = self.root / INDEX
        self.owner = process_owner()
        self._local = threading.local()
        if read_only and self.root.exists() and not self.root.is_dir():
            raise FairLinError(f"run store {self.root} is not a folder (a regular file, FIFO or device); expected "
                               f"the folder a sweep writes")
        if not read_only:
            check_writable(self.root, "run store")
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise FairLinError(f"the index {self.path} of run store {self.root} is not writable (read-only); "
                                   f"expected a store this process can write (listing it works read-only)")
            for folder in (self.runs_dir, self.staging_root):
                check_writable(folder, "run store folder", keep=True)
        problem = self._index_problem()
        if problem:
            folders = len(_run_folders(self.runs_dir))
            raise FairLinError(f"the index {self.path} of run store {self.root} {problem}"
                               f"{f' while {folders} run folder(s) exist' if folders else ''}; nothing was changed "
                               f"or recomputed. Rebuild it from the run folders with `fairlin runs --rebuild-index "
                               f"--store {self.root}`")
        if not read_only:
            self._db().executescript(_SCHEMA)
            self.recover()

    # -- connections ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; transactions are explicit); read-only: SQLite's read-only
        mode (an in-memory empty index when the store has none yet)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path, self.read_only)
            if self.read_only and not self.path.exists():
                db.executescript(_SCHEMA)
            if not self.read_only:
                db.execute("PRAGMA journal_mode=DELETE")  # readers of a rollback-journal index write nothing
                db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _transaction(self) -> _Transaction:
        self._writable()
        return _Transaction(self._db())

    def _writable(self) -> None:
        if self.read_only:
            raise FairLinError(f"run store {self.root} is open read-only; expected a writable store to change runs")

    def _index_problem(self) -> str:
        """What is wrong with the index ("" when it is sound, or absent with no run folders yet); FairLinError
        when it only needs a write this store cannot make (a hot journal in a read-only folder)."""
        has_runs = bool(_run_folders(self.runs_dir))
        journal = self.path.with_name(JOURNAL)
        if self.path.exists() and not self.path.is_file():
            return "is not a regular file (a folder, FIFO or device)"
        if journal.exists() and not journal.is_file():
            return f"has a journal {JOURNAL} that is not a regular file (a folder, FIFO or device)"
        if not self.path.exists():
            return "is missing" if has_runs else ""
        size = self.path.stat().st_size
        if size == 0:
            return "is empty (0 bytes)" if has_runs else ""
        with open(self.path, "rb") as handle:
            header = handle.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
            return f"is not a SQLite database ({size} bytes)"
        page_size = int.from_bytes(header[16:18], "big")
        pages = int.from_bytes(header[28:32], "big")
        if header[24:28] == header[92:96] and size < pages * (65536 if page_size == 1 else page_size):
            return f"is truncated ({size} of {pages * (65536 if page_size == 1 else page_size)} bytes)"
        try:
            db = _connect(self.path, read_only=True)
            try:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                for table, columns in _schema_columns().items():
                    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")} if table in tables else columns
                    missing = [column for column in columns if column not in have]
                    if missing:
                        return f"has another layout (its table {table} lacks {clip(', '.join(missing))})"
                count = db.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in tables else 0
                if "defaults" in tables:
                    db.execute("SELECT count(*) FROM defaults").fetchone()
            finally:
                db.close()
        except sqlite3.DatabaseError as error:
            if getattr(error, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK":
                raise FairLinError(f"the index {self.path} of run store {self.root} holds a write that a killed "
                                   f"process left unfinished ({JOURNAL}); SQLite must roll it back before the index "
                                   f"can be read, and this process cannot write the folder; expected one open by a "
                                   f"user who can write it (any `fairlin runs --store ...` rolls it back)") from None
            return f"is corrupt ({error})"
        if count == 0 and has_runs:
            return "lists no runs"
        return ""

    @classmethod
    def rebuild_index(cls, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Rebuild the index from the run folders (``fairlin runs --rebuild-index``); nothing is recomputed.

        Every folder under ``runs/`` is verified against its manifest: an intact one is indexed ``done``
        (config, hash and results from its summary.json), a damaged one with a readable summary is indexed
        ``damaged`` (a later submit recomputes it), and one whose summary is unreadable is moved to
        ``unindexed/`` and reported. The old index (and its journal files) is kept beside it as
        ``runs.sqlite.old-<time>``. Returns {"store", "done", "damaged": [{"id", "problem"}],
        "unindexed": [{"id", "problem", "moved_to"}], "old_index"}.
        """
        root = check_writable(resolve_store_root(root), "run store", keep=True)
        runs_dir = root / "runs"
        rows, damaged, unindexed = [], [], []
        for folder in _run_folders(runs_dir):
            entry, problem = _indexed_row(folder)
            if entry is None:
                target = root / "unindexed" / folder.name
                target.parent.mkdir(exist_ok=True)
                os.replace(folder, target)
                unindexed.append({"id": folder.name, "problem": problem, "moved_to": str(target)})
                continue
            rows.append(entry)
            if problem:
                damaged.append({"id": folder.name, "problem": problem})
        fresh = root / f"{INDEX}.rebuild-{os.getpid()}"
        fresh.unlink(missing_ok=True)
        db = sqlite3.connect(fresh, isolation_level=None)
        try:
            db.executescript(_SCHEMA)
            db.execute("BEGIN")
            for entry in rows:
                sparse, defaults = _pack(entry.pop("config"))
                digest = hashlib.sha256(defaults.encode()).hexdigest()[:ID_LENGTH]
                db.execute("INSERT OR IGNORE INTO defaults (digest, options) VALUES (?, ?)", (digest, defaults))
                values = {**entry, "config": sparse, "defaults": digest}
                db.execute(f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                           tuple(values.values()))
            db.execute("COMMIT")
        finally:
            db.close()
        old = None
        index = root / INDEX
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-journal", "-wal", "-shm"):
            path = index.with_name(INDEX + suffix)
            if path.exists():
                moved = index.with_name(f"{INDEX}.old-{stamp}{suffix}")
                os.replace(path, moved)
                old = old or str(moved)
        os.replace(fresh, index)
        cls(root)  # opens cleanly now (recovers nothing: every row is done or damaged)
        return {"store": str(root), "done": len(rows) - len(damaged), "damaged": damaged, "unindexed": unindexed,
                "old_index": old}

    # -- recovery ------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Mark runs left queued/running by dead processes ``interrupted``; delete their staging folders.

        Returns the ids marked.
        """
        self._writable()
        rows = self._db().execute("SELECT id, status, owner FROM runs WHERE status IN ('queued', 'running')").fetchall()
        dead = [r["id"] for r in rows if self._orphaned(r["status"], r["owner"])]
        for run_id in dead:
            self._set(run_id, "interrupted", only_from=ACTIVE, finished=now(), error=INTERRUPTED)
        for staging in self.staging_root.iterdir():
            pid = (staging.name.split("-") + [""])[1]
            if not pid.isdigit() or not pid_alive(int(pid)):
                shutil.rmtree(staging, ignore_errors=True)
        return dead

    def _orphaned(self, status: str, owner: str | None) -> bool:
        """Whether a run with this status and owner was left queued or running by a process that no longer
        exists (it reads as ``interrupted``)."""
        return status in ACTIVE and owner != self.owner and not owner_alive(owner)

    # -- writing -------------------------------------------------------------------------------
    def claim(self, config_hash: str, config: dict[str, Any]) -> Claim:
        """Atomically decide what a submit of this config means.

        done, or queued/running by a live process -> that run (``run`` False); absent, or failed,
        cancelled, interrupted, damaged -> queued for this process to execute (``run`` True).
        """
        run_id = config_hash[:ID_LENGTH]
        with self._transaction() as db:
            row = db.execute("SELECT id, config_hash, status, owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None and row["config_hash"] != config_hash:
                raise FairLinError(f"run id {run_id} is taken by another config (hash prefix collision); "
                                   f"expected distinct ids")
            if row is not None and (row["status"] == "done" or
                                    (row["status"] in ACTIVE and (row["owner"] == self.owner
                                                                  or owner_alive(row["owner"])))):
                return Claim(run_id, False)
            sparse, defaults = _pack(config)
            digest = hashlib.sha256(defaults.encode()).hexdigest()[:ID_LENGTH]
            db.execute("INSERT OR IGNORE INTO defaults (digest, options) VALUES (?, ?)", (digest, defaults))
            values = dict(status="queued", config=sparse, created=now(), started=None, finished=None,
                          relu_count=None, overall_accuracy=None, worst_group_accuracy=None, error=None,
                          traceback=None, owner_pid=os.getpid(), owner=self.owner, defaults=digest)
            if row is None:
                db.execute(f"INSERT INTO runs (id, config_hash, {', '.join(values)}) VALUES "
                           f"(?, ?, {', '.join('?' * len(values))})", (run_id, config_hash, *values.values()))
            else:
                db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                           (*values.values(), run_id))
        return Claim(run_id, True)

    def _set(self, run_id: str, status: str, *, only_from: tuple[str, ...], **values: Any) -> bool:
        """Set the status (and other columns) if the run's status is in ``only_from``; True if it was."""
        self._writable()
        values = {"status": status, **values}
        marks = ", ".join("?" * len(only_from))
        cursor = self._db().execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in values)} "
                                    f"WHERE id = ? AND status IN ({marks})", (*values.values(), run_id, *only_from))
        return cursor.rowcount == 1

    def mark_running(self, run_id: str) -> bool:
        """queued (by this process) -> running; False if it is no longer queued."""
        return self._set(run_id, "running", only_from=("queued",), started=now(), owner_pid=os.getpid(),
                         owner=self.owner)

    def mark_failed(self, run_id: str, message: str, traceback: str) -> None:
        """queued/running -> failed, keeping the readable message and the traceback."""
        self._set(run_id, "failed", only_from=ACTIVE, finished=now(), error=message, traceback=traceback)

    def mark_stopped(self, run_id: str, status: str, message: str) -> bool:
        """queued/running -> ``cancelled`` or ``interrupted`` with a message; False if it was not active."""
        return self._set(run_id, status, only_from=ACTIVE, finished=now(), error=message)

    def staging_dir(self, run_id: str) -> Path:
        """A fresh, empty folder to write a run's artifacts into (see :meth:`publish`)."""
        path = self.staging_root / f"{run_id}-{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir()
        return path

    def publish(self, run_id: str, staging: Path, summary: dict[str, Any]) -> None:
        """Seal ``staging`` with a manifest, move it to ``runs/<id>/`` and mark the run done.

        summary: must hold relu_count, overall_accuracy and worst_group_accuracy (copied to the index).
        """
        files = {}
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            files[path.relative_to(staging).as_posix()] = {"size": path.stat().st_size, "sha256": file_digest(path)}
        manifest = staging / MANIFEST
        with open(manifest, "w") as handle:
            json.dump({"run_id": run_id, "files": files}, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        final = self.runs_dir / run_id
        if final.exists():
            old = self.staging_root / f"{run_id}-{os.getpid()}-old{secrets.token_hex(4)}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, final)
        self._set(run_id, "done", only_from=("running",), finished=now(), relu_count=int(summary["relu_count"]),
                  overall_accuracy=_number(summary["overall_accuracy"]),
                  worst_group_accuracy=_number(summary["worst_group_accuracy"]), error=None, traceback=None)

    def discard(self, staging: Path) -> None:
        """Delete a staging folder (a cancelled or failed run leaves nothing behind)."""
        shutil.rmtree(staging, ignore_errors=True)

    # -- reading -------------------------------------------------------------------------------
    def resolve_id(self, run_id: str) -> str:
        """The full id of ``run_id`` or of the single run whose id starts with it (4+ characters)."""
        db = self._db()
        if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return run_id
        matches = [] if len(run_id) < 4 else [r[0] for r in db.execute(
            "SELECT id FROM runs WHERE id >= ? AND id < ? LIMIT 2", (run_id, run_id + "\uffff"))]
        if len(matches) != 1:
            what = "is ambiguous" if matches else "does not exist"
            raise FairLinError(f"run {brief(run_id)} {what} in store {self.root}; expected an id (or a unique prefix of "
                               f"4+ characters) from the runs command")
        return matches[0]

    def row(self, run_id: str) -> dict[str, Any]:
        """The index row of a run (config parsed), after marking it interrupted if its process died."""
        run_id = self.resolve_id(run_id)
        row = dict(self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
        if self._orphaned(row["status"], row["owner"]):
            if self.read_only:  # reported as it will be marked, without writing
                row.update(status="interrupted", error=INTERRUPTED)
            else:
                self.recover()
                row = dict(self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
        row["config"] = _unpack(row["config"], self._defaults()[row.pop("defaults")])
        return row

    def _defaults(self) -> dict[str, dict[str, Any]]:
        """Every stored defaults record by digest, parsed."""
        return {r[0]: json.loads(r[1]) for r in self._db().execute("SELECT digest, options FROM defaults")}

    def list_runs(self, status: str | list[str] | None = None) -> list[dict[str, Any]]:
        """Runs, oldest first, as ``{"id", "status", "config", "created", "finished", "relu_count",
        "overall_accuracy", "worst_group_accuracy"}``; ``status`` filters (one or several). A run of a dead
        process lists ``interrupted``, as :meth:`row` shows it (marked so first in a writable store)."""
        wanted = _statuses(status)
        rows, orphans = self._list_rows(wanted)
        if orphans and not self.read_only:
            self.recover()
            rows, orphans = self._list_rows(wanted)
        defaults = self._defaults()
        with _collector_paused():
            records = [{"id": r[0], "status": "interrupted" if r[0] in orphans else r[1],
                        "config": _unpack(r[2], defaults[r[8]]), "created": r[3], "finished": r[4],
                        "relu_count": r[5], "overall_accuracy": r[6], "worst_group_accuracy": r[7]} for r in rows]
        return [r for r in records if r["status"] in wanted] if wanted else records

    def _list_rows(self, wanted: list[str]) -> tuple[list[tuple[Any, ...]], set[str]]:
        """(the rows (LIST_COLUMNS..., defaults, owner) of the runs with a status in ``wanted`` (all when empty;
        queued and running too when ``interrupted`` is wanted: a dead process's runs read so), the ids of those
        left queued or running by a dead process)."""
        query = f"SELECT {', '.join(LIST_COLUMNS)}, defaults, owner FROM runs"
        statuses = list(dict.fromkeys(wanted + (list(ACTIVE) if "interrupted" in wanted else [])))
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
        cursor = self._db().cursor()
        cursor.row_factory = None  # plain tuples: a third faster than sqlite3.Row here
        rows = cursor.execute(query + " ORDER BY created, id", statuses).fetchall()
        return rows, {r[0] for r in rows if r[1] in ACTIVE and self._orphaned(r[1], r[9])}

    def done_signature(self) -> tuple[int, str | None]:
        """(number of done runs, latest finish time): changes whenever a run finishes; one indexed query, so a
        dashboard can key its caches on it at every rerun."""
        count, latest = self._db().execute("SELECT count(*), max(finished) FROM runs WHERE status = 'done'").fetchone()
        return int(count), latest

    def runs_table(self, status: str | list[str] | None = None) -> pd.DataFrame:
        """One row per run: id, status, method, budget, seed, mitigation (its label: "none", "lagrangian mu 0.01",
        "reweight", "groupdro eta 0.01", ...), mitigation_mu (the lagrangian's mu; NaN otherwise), checkpoint,
        created, finished, relu_count, overall_accuracy, worst_group_accuracy (tidy, for tables and plots).

        A train-base run lists as method ``train-base`` with an empty budget, no mitigation and the
        checkpoint it wrote."""
        rows = [{"id": r["id"], "status": r["status"], **_table_fields(r["config"]), "created": r["created"],
                 "finished": r["finished"], "relu_count": r["relu_count"], "overall_accuracy": r["overall_accuracy"],
                 "worst_group_accuracy": r["worst_group_accuracy"]} for r in self.list_runs(status)]
        return pd.DataFrame(rows, columns=["id", "status", "method", "budget", "seed", "mitigation", "mitigation_mu",
                                           "checkpoint",
                                           "created", "finished", "relu_count", "overall_accuracy",
                                           "worst_group_accuracy"])

    def verify(self, run_id: str) -> str:
        """"" when the done run's folder matches its manifest; else what is wrong, and the run is marked
        ``damaged`` with that message (a read-only store only reports it)."""
        run_id = self.resolve_id(run_id)
        problem = _check_folder(self.runs_dir / run_id, run_id)
        if problem and not self.read_only:
            self._set(run_id, "damaged", only_from=("done",), error=_damaged_message(problem))
        return problem

    def get_run(self, run_id: str) -> Run:
        """A run with its summary and tables (verified against the manifest first when it is done)."""
        run_id = self.resolve_id(run_id)
        problem = self.verify(run_id) if self.row(run_id)["status"] == "done" else ""
        row = self.row(run_id)
        if problem and self.read_only:
            row.update(status="damaged", error=_damaged_message(problem))
        folder = self.runs_dir / run_id
        run = Run(id=row["id"], status=row["status"], config=row["config"], created=row["created"],
                  started=row["started"], finished=row["finished"], relu_count=row["relu_count"],
                  overall_accuracy=row["overall_accuracy"], worst_group_accuracy=row["worst_group_accuracy"],
                  error=row["error"], traceback=row["traceback"], path=folder)
        if run.status == "done":
            run.summary = json.loads((folder / "summary.json").read_text())
            run.tables = {"groups": pd.read_csv(folder / "groups.csv"), "history": pd.read_csv(folder / "history.csv")}
            for table in sorted((folder / "audit").glob("*.csv")):
                run.tables[f"audit:{table.stem}"] = pd.read_csv(table)
        return run


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (ROLLBACK on error): one writer at a time across processes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


_SECTIONS = ("snl", "finetune", "mitigation")


def _pack(config: dict[str, Any]) -> tuple[str, str]:
    """(config JSON without the options equal to their defaults, the defaults JSON)."""
    defaults = option_defaults()
    sparse = dict(config)
    for section in _SECTIONS:
        if sparse.get(section) is not None:  # train-base configs have no option sections
            sparse[section] = {k: v for k, v in sparse[section].items()
                               if k not in defaults[section] or defaults[section][k] != v}
    return json.dumps(sparse, sort_keys=True), json.dumps(defaults, sort_keys=True)


def _table_fields(config: dict[str, Any]) -> dict[str, Any]:
    """method, budget, seed, mitigation, mitigation_mu and checkpoint of a run config (either kind) for runs_table."""
    if config.get("kind") == TRAIN_BASE:
        checkpoint = str(Path(str(config.get("out_dir"))) / f"{config.get('name')}.safetensors")
        return {"method": TRAIN_BASE, "budget": "", "seed": config["seed"], "mitigation": "none",
                "mitigation_mu": float("nan"), "checkpoint": checkpoint}
    return {"method": config["method"], "budget": str(config["budget"]), "seed": config["seed"],
            "mitigation": mitigation_label(config["mitigation"]), "mitigation_mu": lagrangian_mu(config["mitigation"]),
            "checkpoint": config["checkpoint"]}


def _unpack(sparse: str, defaults: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The full config from :func:`_pack`'s output (fresh dicts, nothing shared between runs)."""
    config = json.loads(sparse)
    for section in _SECTIONS:
        if config.get(section) is not None:
            config[section] = {**defaults[section], **config[section]}
    return config


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: building ~10^5 dicts would otherwise trigger collections
    that traverse the whole heap (torch's objects included) several times."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _number(value: Any) -> float | None:
    """NaN/None -> None (SQLite NULL), else float."""
    return None if value is None or value != value else float(value)


def _statuses(status: str | list[str] | None) -> list[str]:
    if status is None:
        return []
    wanted = comma_list(status) if isinstance(status, str) else list(status)
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise FairLinError(f"unknown status(es) {clip(', '.join(map(repr, unknown)))}; expected some of "
                           f"{', '.join(STATUSES)}")
    return wanted


def _check_folder(folder: Path, run_id: str) -> str:
    """What is wrong with a published run folder compared with its manifest ("" when nothing)."""
    if not folder.is_dir():
        return f"folder {folder} is missing"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        return f"{folder / MANIFEST} is missing"
    except (ValueError, KeyError, TypeError):
        return f"{folder / MANIFEST} is corrupt"
    if manifest.get("run_id") != run_id:
        return f"{folder / MANIFEST} belongs to run {manifest.get('run_id')!r}, not {run_id}"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != expected["size"]:
            return f"{path} has {size} bytes, expected {expected['size']} (truncated or overwritten)"
        if file_digest(path) != expected["sha256"]:
            return f"{path} does not match its sha256 in the manifest (corrupt)"
    return ""


def _damaged_message(problem: str) -> str:
    return f"artifacts damaged: {problem}; resubmit (or requeue) the run to recompute it"


def _schema_columns() -> dict[str, list[str]]:
    """{table: its column names} as :data:`_SCHEMA` creates them."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_SCHEMA)
        return {table: [r[1] for r in db.execute(f"PRAGMA table_info({table})")] for table in ("runs", "defaults")}
    finally:
        db.close()


def _roll_back_hot_journal(path: Path) -> None:
    """Let SQLite roll back a write a killed process left unfinished in the index's journal, through a short
    read-write connection, when this process can write the index and its folder (a read-only connection cannot,
    and then refuses to read). The journal of a live writer is left alone: SQLite's locks tell the two apart."""
    if path.with_name(JOURNAL).exists() and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    """A connection to the index; read-only ones use SQLite's ``mode=ro`` URI (an index left in WAL mode
    with nothing pending is opened ``immutable``, since WAL readers would create -wal/-shm files), after
    :func:`_roll_back_hot_journal`."""
    if read_only:
        if not path.exists():
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=True)
        else:
            _roll_back_hot_journal(path)
            with open(path, "rb") as handle:
                wal = handle.read(20)[18:20] == b"\x02\x02"
            pending = path.with_name(path.name + "-wal").exists()
            mode = "immutable=1" if wal and not pending else "mode=ro"
            uri = f"{path.absolute().as_uri()}?{mode}"
            db = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=True)
    else:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=True)
    db.row_factory = sqlite3.Row
    return db


def _run_folders(runs_dir: Path) -> list[Path]:
    """The published run folders under ``runs/`` (none when it does not exist)."""
    return sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []


def _indexed_row(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """(index row of a published run folder, "" or what is wrong with it); the row is None when the folder's
    summary cannot tell which run it holds."""
    run_id = folder.name
    try:
        summary = json.loads((folder / "summary.json").read_text())
        config, config_hash = summary["config"], summary["config_hash"]
        if not (isinstance(config, dict) and isinstance(config_hash, str) and config_hash[:ID_LENGTH] == run_id):
            raise ValueError("summary.json names another run")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"its summary.json is unreadable ({error})"
    problem = _check_folder(folder, run_id)
    stamp = datetime.fromtimestamp((folder / MANIFEST).stat().st_mtime if (folder / MANIFEST).exists()
                                   else folder.stat().st_mtime, timezone.utc).isoformat(timespec="microseconds")
    row = {"id": run_id, "config_hash": config_hash, "status": "damaged" if problem else "done", "config": config,
           "created": stamp, "finished": stamp, "error": _damaged_message(problem) if problem else None}
    if not problem:
        row.update(relu_count=int(summary["relu_count"]), overall_accuracy=_number(summary["overall_accuracy"]),
                   worst_group_accuracy=_number(summary["worst_group_accuracy"]))
    return row, problem
