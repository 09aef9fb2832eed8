"""The run store: SQLite (standard library) in the run folder, plus artifact files named by content key.

Tables
- ``meta``: suite, environment (versions, git revision, device, threads, seed) as JSON values.
- ``tasks``: one row per finished or failed task: content key, kind, label, status, seconds, info, error.
- ``results``: metric rows (task key, method, scenario, adversary, target, user, metric, value).
- ``skipped``: inputs left out, with the reason (a corrupt photo, a photo with no face, too few photos).
- ``attempts``: every start of a task (key, label, process, time): a task started more often than it finished
  was lost to a crash or a kill and computed again.
- ``steps``: the latest step a task under way reported (its loop's label, done of total, time; at most every
  ``STEP_EVERY`` seconds), for ``bench status`` to show how far a task that runs for minutes has gone.

A task's rows and its status are written in one transaction, after its artifact file is in place, so a killed
run loses at most the task in flight and a rerun skips every task whose key is recorded as done. The task's
record holds its artifact's SHA-256 (``artifact_sha256``), checked whenever the artifact is read: a file that is
missing, cut short or altered is refused with its name (``bench.run.artifacts.ArtifactError``), and a rerun
recomputes its task and what depends on it (``bench.run.executors.pending``). A store made before artifacts were hashed gets the column
on open, and each done task's artifact that still loads is adopted as found, once; one that does not is computed
again.

A store SQLite cannot read (a damaged file) is refused at open by ``PRAGMA integrity_check``
(:class:`StoreDamaged`), with what is left to recover. Artifact files are written and checked by
``bench.run.artifacts``; one run at a time holds the folder (``bench.run.folder_lock``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from bench.core.checksums import file_sha256
from bench.core.storage import StorageError, StoreDamaged, storage_line
from bench.run.artifacts import ArtifactReader

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL, status TEXT NOT NULL,
    seconds REAL, finished REAL, info TEXT, error TEXT, artifact_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS results (
    task_key TEXT NOT NULL, method TEXT, scenario TEXT, adversary TEXT, target TEXT, user TEXT,
    metric TEXT NOT NULL, value REAL
);
CREATE INDEX IF NOT EXISTS results_by_task ON results(task_key);
CREATE TABLE IF NOT EXISTS skipped (item TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (key TEXT NOT NULL, label TEXT NOT NULL, pid INTEGER, host TEXT, started REAL);
CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, label TEXT NOT NULL, done INTEGER, total INTEGER, at REAL);
"""

# A step is written at most this often (seconds), besides a loop's first and last: a loop of many quick steps
# costs no more than a write now and then.
STEP_EVERY = 10.0
TASK_COLUMNS = ("key", "kind", "label", "status", "seconds", "finished", "info", "error", "artifact_sha256")


@dataclass
class ResultRow:
    metric: str
    value: float
    method: str | None = None
    scenario: str | None = None
    adversary: str | None = None
    target: str | None = None
    user: str | None = None


class Outcome(NamedTuple):
    kind: str
    label: str
    status: str  # done | failed
    finished: float | None  # time.time() when it was recorded
    error: str | None


class RunStore(ArtifactReader):
    def __init__(self, run_dir: str | os.PathLike):
        super().__init__(run_dir)
        self.path = self.run_dir / "store.sqlite"
        self.db = sqlite3.connect(self.path, timeout=60)
        self.under_way: str | None = None  # the key of the task this process began last, while it computes
        self.step_written = 0.0
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            problems = [row[0] for row in self.db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems[:3]))
            self.db.executescript(SCHEMA)
            self.db.commit()
            self._add_artifact_hashes()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            line = storage_line(exc, self.run_dir)
            if line:
                raise StorageError(0, line) from None
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise StoreDamaged(self.damaged_message(exc)) from None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A transaction; a full disk or a read-only folder ends it with one line naming the run folder."""
        try:
            with self.db:
                yield
        except sqlite3.OperationalError as exc:
            line = storage_line(exc, self.run_dir)
            if line is None:
                raise
            raise StorageError(0, line) from None

    def damaged_message(self, exc: Exception) -> str:
        kept = len(list(self.artifact_dir.glob("*.pt")))
        return (f"run store {self.path} is damaged ({' '.join(str(exc).split())}): its results and checksums cannot "
                f"be read. What is left: {kept} artifact file(s) in {self.artifact_dir}, one per task key (torch "
                f"files; unverified without the store). To go on: move the store aside (mv {self.path} "
                f"{self.path}.damaged; also its -wal and -shm files) and rerun the same command, which computes "
                f"the run again; `sqlite3 {self.path}.damaged .recover` may rescue rows for inspection")

    def _add_artifact_hashes(self) -> None:
        """Migrate a store made before artifacts were hashed: add the column, adopt every done task's artifact
        that still loads (hashed as found, once) and mark the task of one that does not as not done."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(tasks)")}
        if "artifact_sha256" in columns:
            return
        adopted, lost = [], []
        for (key,) in self.db.execute("SELECT key FROM tasks WHERE status = 'done'").fetchall():
            path = self.artifact_path(key)
            if not path.exists():
                continue  # a task that keeps no artifact
            try:
                torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
            except Exception:  # noqa: BLE001 - any unreadable file is computed again
                lost.append((f"artifact {path} unreadable when checksums were added", key))
            else:
                adopted.append((hashlib.sha256(path.read_bytes()).hexdigest(), key))
        with self._writing():
            self.db.execute("ALTER TABLE tasks ADD COLUMN artifact_sha256 TEXT")
            self.db.executemany("UPDATE tasks SET artifact_sha256 = ? WHERE key = ?", adopted)
            self.db.executemany("UPDATE tasks SET status = 'stale', error = ? WHERE key = ?", lost)

    @classmethod
    def open_existing(cls, run_dir: str | os.PathLike) -> RunStore:
        if not (Path(run_dir) / "store.sqlite").exists():
            raise FileNotFoundError(f"{run_dir} is not a run folder (no store.sqlite); give the --out folder of a `bench run`")
        return cls(run_dir)

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # -- tasks --------------------------------------------------------------------------------------------
    def is_done(self, key: str) -> bool:
        row = self.db.execute("SELECT status FROM tasks WHERE key = ?", (key,)).fetchone()
        return bool(row) and row[0] == "done"

    def done_keys(self) -> set[str]:
        return {key for (key,) in self.db.execute("SELECT key FROM tasks WHERE status = 'done'")}

    def outcomes(self) -> dict[str, Outcome]:
        """Every recorded task's outcome by key, in the order they finished."""
        return {row[0]: Outcome(*row[1:]) for row in self.db.execute(
            "SELECT key, kind, label, status, finished, error FROM tasks ORDER BY finished")}

    def task(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        task = dict(zip(TASK_COLUMNS, row, strict=True))
        task["info"] = json.loads(task["info"]) if task["info"] else {}
        return task

    def recorded_sha256(self, key: str) -> str | None:
        recorded = self.db.execute("SELECT artifact_sha256 FROM tasks WHERE key = ? AND status = 'done'",
                                   (key,)).fetchone()
        return recorded[0] if recorded else None

    def artifact_problem(self, key: str) -> str | None:
        """Why a done task's artifact cannot be used (missing, cut short, altered), or None."""
        row = self.db.execute("SELECT artifact_sha256 FROM tasks WHERE key = ?", (key,)).fetchone()
        if not row or not row[0]:
            return None  # a task that keeps no artifact
        path = self.artifact_path(key)
        try:
            digest = file_sha256(path)
        except FileNotFoundError:
            return f"artifact {path} is missing"
        if digest != row[0]:
            return (f"artifact {path} does not match the SHA-256 recorded when it was written "
                    f"({path.stat().st_size} bytes now; cut short or altered)")
        return None

    def mark_stale(self, reasons: dict[str, str]) -> None:
        """Tasks to compute again (their artifact, or one they read, is damaged); their rows go with them."""
        with self._writing():
            for key, reason in reasons.items():
                self.db.execute("DELETE FROM results WHERE task_key = ?", (key,))
                self.db.execute("UPDATE tasks SET status = 'stale', error = ? WHERE key = ?", (reason, key))

    def record(
        self, key: str, kind: str, label: str, status: str, seconds: float,
        info: dict[str, Any] | None = None, rows: Iterable[ResultRow] = (), error: str | None = None,
        artifact_sha256: str | None = None,
    ) -> None:
        """Write a task's outcome and its rows atomically (replacing an earlier attempt of the same key)."""
        with self._writing():
            self.db.execute("DELETE FROM results WHERE task_key = ?", (key,))
            self.db.execute(
                f"INSERT OR REPLACE INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({', '.join('?' * 9)})",
                (key, kind, label, status, seconds, time.time(), json.dumps(info or {}, default=str), error,
                 artifact_sha256),
            )
            self.db.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, r.method, r.scenario, r.adversary, r.target, r.user, r.metric, float(r.value)) for r in rows],
            )
            self.db.execute("DELETE FROM steps WHERE key = ?", (key,))  # no longer under way
        if key == self.under_way:
            self.under_way = None

    def rows(self, task_keys: Iterable[str]) -> list[dict[str, Any]]:
        keys = list(task_keys)
        out = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT * FROM results WHERE task_key IN ({','.join('?' * len(chunk))})"
            cur = self.db.execute(q, chunk)
            cols = [c[0] for c in cur.description]
            out += [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        return out

    def skip(self, item: str, reason: str) -> None:
        self.skip_many([(item, reason)])

    def skip_many(self, items: Iterable[tuple[str, str]]) -> None:
        with self._writing():
            self.db.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?)", list(items))

    def begin(self, key: str, label: str) -> None:
        """Note that a task starts computing (an attempt that never finishes was lost to a crash or kill)."""
        with self._writing():
            self.db.execute("INSERT INTO attempts VALUES (?, ?, ?, ?, ?)",
                            (key, label, os.getpid(), socket.gethostname(), time.time()))
        self.under_way = key

    def note_step(self, label: str, done: int, total: int) -> None:
        """Record the step the task under way reached (``RunContext.progress``): a loop's first and last step,
        and between them one at most every ``STEP_EVERY`` seconds."""
        now = time.time()
        if self.under_way is None or (0 < done < total and now - self.step_written < STEP_EVERY):
            return
        self.step_written = now
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?)",
                            (self.under_way, label, done, total, now))

    def steps(self) -> dict[str, dict[str, Any]]:
        """Task key -> the latest step it reported: label, done, total, at (time.time())."""
        cur = self.db.execute("SELECT key, label, done, total, at FROM steps")
        return {key: {"label": label, "done": done, "total": total, "at": at} for key, label, done, total, at in cur}

    def attempts(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT key, label, pid, host, started FROM attempts ORDER BY started")
        return [dict(zip(("key", "label", "pid", "host", "started"), row, strict=True)) for row in cur]

    def failed_since(self, since: float) -> list[tuple[str, str]]:
        """(label, error) of the tasks recorded as failed at or after ``since`` (a time.time() value)."""
        return self.db.execute("SELECT label, error FROM tasks WHERE status = 'failed' AND finished >= ? "
                               "ORDER BY finished", (since,)).fetchall()

    def tracebacks_since(self, since: float) -> list[tuple[str, str]]:
        """(label, full traceback) of the tasks recorded as failed at or after ``since``, where one was kept."""
        rows = self.db.execute("SELECT label, info FROM tasks WHERE status = 'failed' AND finished >= ? "
                               "ORDER BY finished", (since,)).fetchall()
        return [(label, trace) for label, info in rows if (trace := json.loads(info or "{}").get("traceback"))]

    def skipped(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT item, reason FROM skipped").fetchall())
