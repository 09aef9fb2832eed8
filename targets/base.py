"""Base classes for face recognition targets.

A target maps aligned canvases (N x 3 x 224 x 224 RGB in [0, 1], see ``bench.data.canvas``) to L2-normalised
embeddings (N x D). It takes its own framing from the canvas (``Framing.crop``), then applies its own channel
order, mean and scale. ``TorchTarget`` subclasses are differentiable end to end; ``BlackBoxTarget`` subclasses
run a foreign runtime (native dlib, OpenCV) without gradients.

Weights are named by ``bench.models.weights.WeightSpec`` entries and fetched/verified by ``bench.models.weights``; a target
whose weights cannot be had reports ``available = False`` with the reason and is marked ``unavailable``. A loaded
target knows the digest of every file it was built from (``weight_digests``, for task keys), and an embedding
that is not finite (NaN or inf: corrupt weights, a broken conversion) raises instead of ranking as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bench.api import (
    Framing,
    IntegrityError,
    WeightError,
    WeightSpec,
    calibrations,
    is_weak,
    load_calibration,
    recording,
    weight_status,
)


class NonFiniteEmbeddingError(RuntimeError):
    """A target produced NaN or infinite embeddings: its result must not count."""


@dataclass
class TargetConfig:
    batch_size: int = 32
    device: str = "cpu"


class Target:
    name: str = "target"
    differentiable: ClassVar[bool] = True
    embedding_dim: ClassVar[int] = 0
    framing: ClassVar[Framing]
    weights: ClassVar[tuple[WeightSpec, ...]] = ()
    # Short human description of preprocessing, shown by `bench targets`.
    preprocessing: ClassVar[str] = ""
    # What users must know before trusting its results (unknown provenance, ...), shown by `bench list targets`.
    notes: ClassVar[str] = ""
    # Core requirements the harness leaves to plug-ins (bench.run.bundle.PLUGIN_PACKAGES) that this target imports
    # to run: a run-only `bench bundle` carries them only for the targets it is made for.
    run_packages: ClassVar[tuple[str, ...]] = ()
    Config = TargetConfig

    def __init__(self, config: TargetConfig | None = None):
        self.config = config or self.Config()
        self._loaded = False
        self.weight_files: dict[str, str] = {}  # path -> SHA-256 of each file the model was built from

    # -- registry hooks ------------------------------------------------------------------------------
    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        for spec in cls.weights:
            ok, reason = weight_status(spec)
            if not ok:
                return False, reason
        return cls.runtime_available()

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        """Override to check optional runtimes (dlib, OpenCV ...)."""
        return True, None

    @classmethod
    def convert_weights(cls) -> list[Path]:
        """The files this target converts once from its verified weights, built now if missing (none here)."""
        return []

    @classmethod
    def describe(cls, name: str | None = None, **_preset: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "differentiable": cls.differentiable,
            "embedding_dim": cls.embedding_dim,
            "input_size": cls.framing.size,
            "weights": [s.name for s in cls.weights],
            "license": "; ".join(dict.fromkeys(s.license for s in cls.weights if s.license)),
        }
        try:
            cal = load_calibration(name or getattr(cls, "registered_names", ("",))[0])
        except IntegrityError as exc:
            row["calibration_error"] = str(exc)
            cal = {}
        if cal:
            row["lfw_accuracy"] = cal.get("lfw_accuracy")
            row["threshold_far1e-3"] = cal.get("thresholds", {}).get("far1e-3")
            row["weak"] = is_weak(cal.get("lfw_accuracy"))
        if cls.notes:
            row["notes"] = cls.notes
        return row

    # -- model -----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    def load(self) -> None:
        """Fetch/verify weights, build the model and check its calibration file; idempotent."""
        if not self._loaded:
            with recording() as files:
                self._load()
            calibrations(self.name)  # a calibration file that fails its checksum stops the target here
            self.weight_files = files
            self._loaded = True

    def weight_digests(self) -> list[str]:
        """SHA-256 of every file the loaded model was built from (originals and converted files), sorted."""
        self.load()
        return sorted(set(self.weight_files.values()))

    def _load(self) -> None:
        raise NotImplementedError

    def embed(self, canvases: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W canvases in [0, 1] -> N x D unit-norm embeddings, in batches of ``batch_size``."""
        self.load()
        bs = self.config.batch_size
        outs = [self._embed_batch(canvases[i : i + bs]) for i in range(0, len(canvases), bs)]
        if not outs:
            return torch.zeros(0, self.embedding_dim, device=canvases.device)
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        if not bool(torch.isfinite(out).all()):
            bad = int((~torch.isfinite(out.detach())).any(1).sum())
            raise NonFiniteEmbeddingError(
                f"target {self.name}: {bad} of {len(out)} embeddings are not finite (NaN or inf); its weights or "
                "converted files are likely corrupt: run `bench weights verify`"
            )
        return out

    def _embed_batch(self, canvases: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- calibration -----------------------------------------------------------------------------------
    def thresholds(self, data: str | None) -> dict[str, float]:
        """Cosine-similarity thresholds (keys ``far1e-2``, ``far1e-3``) calibrated on the LFW copy whose
        fingerprint is ``data`` (the run passes the one under its data root); empty if not calibrated there."""
        if data is None:
            return {}
        return dict(load_calibration(self.name, data).get("thresholds", {}))


class TorchTarget(Target, torch.nn.Module):
    """A differentiable target: ``preprocess`` then ``network``; gradients reach the canvas pixels."""

    differentiable = True

    def __init__(self, config: TargetConfig | None = None):
        torch.nn.Module.__init__(self)
        Target.__init__(self, config)
        self.network: torch.nn.Module | None = None

    def _load(self) -> None:
        net = self.build_network()
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.network = net.to(self.device)

    def build_network(self) -> torch.nn.Module:
        raise NotImplementedError

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        """RGB crops in [0, 1] at the framing's size -> the network's input."""
        return crops

    def _embed_batch(self, canvases: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(self.framing.crop(canvases.to(self.device)))
        return F.normalize(self.network(x).flatten(1), dim=1)

    def forward(self, canvases: torch.Tensor) -> torch.Tensor:
        return self.embed(canvases)


class BlackBoxTarget(Target):
    """A target run by a foreign runtime: no gradients, crops leave torch as 8-bit arrays."""

    differentiable = False

    def embed(self, canvases: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return super().embed(canvases.detach())


__all__ = ["Target", "TorchTarget", "BlackBoxTarget", "TargetConfig", "WeightError", "load_calibration",
           "NonFiniteEmbeddingError", "is_weak"]
