"""Checksums for the files cloakbench makes and keeps: converted weights, calibrations, aligned canvases.

A file is written next to a sidecar ``<name>.sha256`` (``sha256sum`` format, so ``sha256sum -c`` checks it too)
that records its SHA-256 when it was made. Whoever reads the file checks it first: a file that does not match
(bytes overwritten on disk, a copy cut short, a sidecar from another build) is refused, and re-derived where
that is cheap, or reported with what to do. Files packed as numpy ``.npz`` carry the digest of their arrays
inside instead (:func:`arrays_digest`), so the thousands of cached canvases need no second file each.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np


class IntegrityError(RuntimeError):
    """A file that does not match the checksum recorded when it was made; the message says what to do."""


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path: Path) -> str | None:
    """The digest recorded for ``path`` when it was made, or None when there is no readable record."""
    try:
        text = sidecar(path).read_text().split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0].lower() if text and len(text[0]) == 64 else None


def mismatch(path: Path) -> str | None:
    """Why ``path`` cannot be trusted (None when it matches its recorded digest)."""
    if not path.is_file():
        return f"{path} does not exist"
    expected = recorded_sha256(path)
    if expected is None:
        return f"{path} has no recorded checksum ({sidecar(path).name} is missing or unreadable)"
    got = file_sha256(path)
    if got != expected:
        return f"{path} has SHA-256 {got}, but {expected} was recorded when it was made"
    return None


def write_checked(path: Path, build: Callable[[Path], None]) -> str:
    """Make ``path`` with ``build(tmp)`` and record its digest; returns the digest.

    The file is built under a temporary name, its sidecar written, and only then moved into place: a process
    killed half-way leaves either the old pair or a file that no longer matches its sidecar (re-derived on use).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        build(tmp)
        digest = record(path, file_sha256(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def record(path: Path, digest: str) -> str:
    """Write ``path``'s sidecar with ``digest`` (also used to adopt a file made before checksums were kept)."""
    side = sidecar(path)
    side_tmp = _temporary(side)
    side_tmp.write_text(f"{digest}  {path.name}\n")
    os.replace(side_tmp, side)
    return digest


def _temporary(path: Path) -> Path:
    """A sibling name of ``path`` no other process writes to (two runs may build the same file at once)."""
    return path.with_name(f"{path.name}.{os.getpid()}.part")


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``arrays`` (in name order)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
