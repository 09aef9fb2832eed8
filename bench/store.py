"""The run store: SQLite (standard library) in the run folder, plus artifact files named by content key.

Tables
- ``meta``: suite, environment (versions, git revision, device, threads, seed) as JSON values.
- ``tasks``: one row per finished or failed task: content key, kind, label, status, seconds, info, error.
- ``results``: metric rows (task key, method, scenario, adversary, target, user, metric, value).
- ``skipped``: inputs left out, with the reason (a corrupt photo, a photo with no face, too few photos).
- ``attempts``: every start of a task (key, label, process, time): a task started more often than it finished
  was lost to a crash or a kill and computed again.

A task's rows and its status are written in one transaction, after its artifact file is in place, so a killed
run loses at most the task in flight and a rerun skips every task whose key is recorded as done.

One run at a time computes in a run folder: :func:`run_lock` holds ``run.lock`` (an OS file lock, released by
the kernel when the process ends, even on ``kill -9``) and records who holds it; a second run into the same
folder waits for it, saying who holds it, or stops at once, and then reuses what the first one finished.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL, status TEXT NOT NULL,
    seconds REAL, finished REAL, info TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS results (
    task_key TEXT NOT NULL, method TEXT, scenario TEXT, adversary TEXT, target TEXT, user TEXT,
    metric TEXT NOT NULL, value REAL
);
CREATE INDEX IF NOT EXISTS results_by_task ON results(task_key);
CREATE TABLE IF NOT EXISTS skipped (item TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (key TEXT NOT NULL, label TEXT NOT NULL, pid INTEGER, host TEXT, started REAL);
"""


@dataclass
class ResultRow:
    metric: str
    value: float
    method: str | None = None
    scenario: str | None = None
    adversary: str | None = None
    target: str | None = None
    user: str | None = None


class ArtifactReader:
    """A run folder's artifacts without its database: what a worker of a distributed executor gets (the driver
    is the store's one writer). It reads artifacts, writes the ones its tasks make, and keeps skipped items in
    memory (the driver records its own)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.artifact_dir = self.run_dir / "artifacts"
        self.artifact_dir.mkdir(exist_ok=True)
        self._skipped: dict[str, str] = {}

    def skip(self, item: str, reason: str) -> None:
        self._skipped[item] = reason

    def tracebacks_since(self, since: float) -> list[tuple[str, str]]:
        """(label, full traceback) of the tasks recorded as failed at or after ``since``, where one was kept."""
        rows = self.db.execute("SELECT label, info FROM tasks WHERE status = 'failed' AND finished >= ? "
                               "ORDER BY finished", (since,)).fetchall()
        return [(label, trace) for label, info in rows if (trace := json.loads(info or "{}").get("traceback"))]

    def skipped(self) -> dict[str, str]:
        return dict(self._skipped)

    def artifact_path(self, key: str) -> Path:
        return self.artifact_dir / f"{key}.pt"

    def save_artifact(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        path = self.artifact_path(key)
        tmp = path.with_suffix(".part")
        torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)

    def load_artifact(self, key: str) -> dict[str, torch.Tensor]:
        # Files this run wrote itself; weights_only keeps a tampered file from running code.
        return torch.load(self.artifact_path(key), weights_only=True)


class RunStore(ArtifactReader):
    def __init__(self, run_dir: str | os.PathLike):
        super().__init__(run_dir)
        self.path = self.run_dir / "store.sqlite"
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    @classmethod
    def open_existing(cls, run_dir: str | os.PathLike) -> RunStore:
        if not (Path(run_dir) / "store.sqlite").exists():
            raise FileNotFoundError(f"{run_dir} is not a run folder (no store.sqlite); give the --out folder of a `bench run`")
        return cls(run_dir)

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # -- tasks --------------------------------------------------------------------------------------------
    def is_done(self, key: str) -> bool:
        row = self.db.execute("SELECT status FROM tasks WHERE key = ?", (key,)).fetchone()
        return bool(row) and row[0] == "done"

    def task(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT key, kind, label, status, seconds, finished, info, error FROM tasks WHERE key = ?", (key,)
        ).fetchone()
        if not row:
            return None
        return {"key": row[0], "kind": row[1], "label": row[2], "status": row[3], "seconds": row[4],
                "finished": row[5], "info": json.loads(row[6]) if row[6] else {}, "error": row[7]}

    def record(
        self, key: str, kind: str, label: str, status: str, seconds: float,
        info: dict[str, Any] | None = None, rows: Iterable[ResultRow] = (), error: str | None = None,
    ) -> None:
        """Write a task's outcome and its rows atomically (replacing an earlier attempt of the same key)."""
        with self.db:
            self.db.execute("DELETE FROM results WHERE task_key = ?", (key,))
            self.db.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, kind, label, status, seconds, time.time(), json.dumps(info or {}, default=str), error),
            )
            self.db.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, r.method, r.scenario, r.adversary, r.target, r.user, r.metric, float(r.value)) for r in rows],
            )

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
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?)", list(items))

    def begin(self, key: str, label: str) -> None:
        """Note that a task starts computing (an attempt that never finishes was lost to a crash or kill)."""
        with self.db:
            self.db.execute("INSERT INTO attempts VALUES (?, ?, ?, ?, ?)",
                            (key, label, os.getpid(), socket.gethostname(), time.time()))

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


class RunFolderBusy(RuntimeError):
    """Another process is running into the same run folder; the message says which, where and since when."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"pid {info['pid']} on host {info['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another bench run"


@contextmanager
def run_lock(run_dir: str | os.PathLike, wait: bool = True,
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run folder for one run. A second run waits for the holder to finish (``wait``) after saying who
    it is, or raises :class:`RunFolderBusy` naming it. The OS releases the lock when its process ends."""
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"run folder {run_dir} is in use by {_holder(path)}"
            if not wait:
                raise RunFolderBusy(f"{message}; wait for it to finish (or stop it), or choose another --out") \
                    from None
            if on_wait:
                on_wait(f"{message}; waiting for it to finish, then its finished tasks are reused")
            fcntl.flock(fd, fcntl.LOCK_EX)
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
