"""Writing files where the disk may be full or the folder not writable: one line that names the folder, the space
the write needed and the space left, in place of a library's traceback.

Writers that know what they write go through :func:`write_bytes` (or wrap their own writer in :func:`writing`),
so the message can say how much room was needed. The command line turns any other full-disk or permission error
(an ``OSError``, SQLite's "database or disk is full") into the same kind of line with :func:`storage_line`.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
SQLITE_FULL = ("database or disk is full",)
SQLITE_DENIED = ("attempt to write a readonly database", "unable to open database file")


class StorageError(OSError):
    """A write that failed for want of space or permission; ``str()`` is the one line to show."""

    def __str__(self) -> str:
        return str(self.strerror)


class StoreDamaged(ValueError):
    """A run store SQLite cannot read; the message says what can be recovered and how."""


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes < 1e9 else f"{nbytes / 1e9:.1f} GB"


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def describe(folder: Path, full: bool, needed: int | None = None, what: str = "") -> str:
    """The one line for a full disk (``full``) or a refused write in ``folder``."""
    folder = Path(folder)
    doing = f" {what}" if what else ""
    if full:
        try:
            free = f"{_mb(shutil.disk_usage(_existing(folder)).free)} free there"
        except OSError:
            free = "free space unknown"
        need = f"needs {_mb(needed)}" if needed is not None else "needs more room"
        return (f"no space left in {folder}{doing}: the write {need} ({free}); free some space or choose another "
                "folder (--out, BENCH_HOME), then rerun the same command to resume")
    return (f"permission denied writing in {folder}{doing}: make it writable or choose another folder "
            "(--out, BENCH_HOME), then rerun the same command to resume")


def storage_line(exc: BaseException, folder: Path | None = None) -> str | None:
    """The one line for a full-disk or permission error (SQLite's about a store in ``folder``), or None when
    ``exc`` is something else."""
    if isinstance(exc, StorageError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in FULL | DENIED:
        where = Path(exc.filename).parent if exc.filename else Path.cwd()
        return describe(where, exc.errno in FULL)
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if any(s in text for s in SQLITE_FULL + SQLITE_DENIED):
            return describe(folder or Path.cwd(), any(s in text for s in SQLITE_FULL), what=f"(the run store: {text})")
    return None


@contextmanager
def writing(folder: Path, needed: int | None = None, what: str = "") -> Iterator[None]:
    """Turn a full disk or a refused write inside the block into a :class:`StorageError` about ``folder``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL | DENIED:
            raise
        raise StorageError(exc.errno, describe(folder, exc.errno in FULL, needed, what)) from exc


def write_bytes(path: Path, data: bytes, what: str = "", tmp: Path | None = None) -> None:
    """Write ``data`` whole: under ``tmp`` (by default ``<stem>.<pid>.tmp<suffix>``, this process's own name, which
    :func:`remove_orphans` knows), then renamed, so a killed or failed write leaves nothing under the file's own
    name."""
    tmp = tmp or path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    with writing(path.parent, len(data), what):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()


def save_torch(obj: object, path: Path, what: str = "", tmp: Path | None = None) -> bytes:
    """``torch.save(obj, path)`` through :func:`write_bytes`: serialised in memory first, so a full disk or a
    refused folder gives one line with the size the write needed; returns the bytes written (to hash them)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    write_bytes(path, data, what, tmp)
    return data


def remove_orphans(folder: Path, pattern: str, quiet_s: float = 60.0) -> None:
    """Remove temporary files ``<name>.<pid>.tmp<suffix>`` under ``folder`` (``pattern``) left by processes killed
    while writing: those of a process that no longer runs here and has not written for ``quiet_s``, or older than
    an hour (a live writer renames its file within seconds)."""
    now = time.time()
    for tmp in folder.glob(pattern):
        try:
            pid, age = int(tmp.name.split(".")[-3]), now - tmp.stat().st_mtime
        except (ValueError, IndexError, OSError):
            continue
        if age > 3600 or (age > quiet_s and not _alive(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
