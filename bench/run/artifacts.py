"""A run's artifacts: the tensors each task makes, one file per content key in ``<run>/artifacts``, written whole
and read back checked against the SHA-256 recorded with their task (:class:`ArtifactError` names a file that is
missing, cut short or altered). ``ArtifactReader`` is a run folder's artifacts without its database, what a worker
of a distributed executor gets; ``bench.run.store.RunStore`` adds the database."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from bench.core.storage import save_torch


class ArtifactError(ValueError):
    """A run artifact that is missing or does not match the SHA-256 recorded with its task; names the file."""


class ArtifactReader:
    """A run folder's artifacts without its database: what a worker of a distributed executor gets (the driver
    is the store's one writer). It reads artifacts, checked against the SHA-256 the driver recorded and hands over
    with each task (:meth:`expect`), writes the ones its tasks make, and keeps skipped items in memory (the driver
    records its own)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.artifact_dir = self.run_dir / "artifacts"
        self.artifact_dir.mkdir(exist_ok=True)
        self._skipped: dict[str, str] = {}
        self._recorded: dict[str, str] = {}  # task key -> its artifact's SHA-256, as the store recorded it

    def expect(self, hashes: dict[str, str]) -> None:
        """The SHA-256 recorded for artifacts this reader is to read (``load_artifact`` refuses any other)."""
        self._recorded.update(hashes)

    def recorded_sha256(self, key: str) -> str | None:
        """The SHA-256 recorded when ``key``'s task finished, or None."""
        return self._recorded.get(key)

    def skip(self, item: str, reason: str) -> None:
        self._skipped[item] = reason

    def note_step(self, label: str, done: int, total: int) -> None:
        """A step inside the task under way: the driver's store records its own tasks' steps, not a worker's."""

    def skipped(self) -> dict[str, str]:
        return dict(self._skipped)

    def artifact_path(self, key: str) -> Path:
        return self.artifact_dir / f"{key}.pt"

    def save_artifact(self, key: str, tensors: dict[str, torch.Tensor]) -> str:
        """Write a task's artifact whole; returns its SHA-256 (recorded with the task)."""
        path = self.artifact_path(key)  # one process computes a task: its temporary name is the key's own
        data = save_torch({k: v.detach().cpu() for k, v in tensors.items()}, path, "(a task's artifact)",
                          path.with_name(f"{path.name}.part"))
        return hashlib.sha256(data).hexdigest()

    def load_artifact(self, key: str) -> dict[str, torch.Tensor]:
        """A done task's artifact, checked against the SHA-256 recorded with the task (:class:`ArtifactError`
        names the file)."""
        path = self.artifact_path(key)
        sha256 = self.recorded_sha256(key)
        if not sha256:
            raise ArtifactError(f"artifact {path} belongs to no finished task with a recorded SHA-256; rerun the "
                                "same command to compute it again")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {path} is missing; rerun the same command to compute it again") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactError(f"artifact {path} does not match the SHA-256 recorded when it was written "
                                f"({len(data)} bytes now; cut short or altered); rerun the same command to compute "
                                "it again")
        # weights_only keeps a tampered file from running code
        return torch.load(io.BytesIO(data), weights_only=True)

