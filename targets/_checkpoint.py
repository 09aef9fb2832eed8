"""Shared base for differentiable targets whose weights the user brings (see ``bench.models.user_weights``).

A subclass names one ``WeightSpec`` of ``source="path"`` in ``weights`` and builds its network from the file
``self.weight_file()`` returns. Config adds ``weights_path`` (else ``BENCH_WEIGHTS_<NAME>`` or the cache
folder) and ``sha256`` (checked when set, else the spec's pinned digest, if any).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.api import locate_user_file, user_file_status
from targets.base import TargetConfig, TorchTarget


@dataclass
class CheckpointConfig(TargetConfig):
    weights_path: str = ""  # the checkpoint; empty: BENCH_WEIGHTS_<NAME>, then $BENCH_HOME/weights/<name>/
    sha256: str = ""  # expected digest; empty: the spec's pinned digest if it has one, else unchecked


class CheckpointTarget(TorchTarget):
    Config = CheckpointConfig

    @classmethod
    def availability(cls, **preset) -> tuple[bool, str | None]:
        ok, reason = user_file_status(cls.weights[0], preset.get("weights_path", ""))
        if not ok:
            return False, reason
        return cls.runtime_available()

    def weight_file(self) -> Path:
        return locate_user_file(self.weights[0], self.config.weights_path, self.config.sha256)
