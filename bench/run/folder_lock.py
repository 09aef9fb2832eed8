"""One run at a time computes in a run folder: :func:`run_lock` holds ``run.lock`` (an OS file lock, released by
the kernel when the process ends, even on ``kill -9``) and records who holds it; a second run into the same
folder waits for it, saying who holds it, or stops at once (:class:`RunFolderBusy`), and then reuses what the
first one finished."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class RunFolderBusy(RuntimeError):
    """Another process is running into the same run folder; the message says which, where and since when."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"pid {info['pid']} on host {info['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another bench run"


def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds the run folder now ("pid ... on host ... since ..."), or None when no run computes in it. Reads
    only: the lock file is not made where there is none."""
    import fcntl

    path = Path(run_dir) / "run.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        return None  # taken and let go at once: nobody held it
    finally:
        os.close(fd)


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
