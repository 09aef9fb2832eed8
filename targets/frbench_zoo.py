"""FRBench's model zoo (PyPI ``frbench``, MIT) as a differentiable target provider, for users who are online.

FRBench (HKU-TASR) ships one torch module for ~45 recognisers over 25 backbones x 9 losses x 3 training sets,
named ``<backbone>_<loss>_<dataset>`` (e.g. ``irse-100_arcface_ms1m``, ``swinv2-b_arcface_ms1m``,
``mobilefacenet_arcface_ms1m``); each has its own crop size, five-point template, channel order, mean and std.
Its manifest and weights download from GitHub releases (``frbench-download KEY``) into its own cache
(``FRBENCH_CACHE``, default ``~/.frbench``), where it verifies them by SHA-256 itself; nothing is fetched at run
time here (its update check is switched off). The target is unavailable, with the command to run, until the
model is in that cache.

Framing: the model's own template and size, taken from the canvas by ``Framing``; then FRBench's own
normalisation (``need_crop=False``, no test-time flip), L2-normalised embedding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.api import TARGETS, Framing
from targets.base import TargetConfig, TorchTarget

INSTALL = "pip install frbench==1.1.3"


@dataclass
class FRBenchConfig(TargetConfig):
    backbone: str = "irse-100"
    loss: str = "arcface"
    dataset: str = "ms1m"
    detector: str = "retinaface_mobilenetv1"  # never run on canvases; FRBench checks its key exists

    @property
    def key(self) -> str:
        return f"{self.backbone}_{self.loss}_{self.dataset}"


def _cached_model(key: str) -> tuple[bool, str | None]:
    """Is ``key`` in FRBench's cached manifest with all its files at hand? (no network)"""
    try:
        import frbench
    except ImportError as exc:
        return False, f"frbench is not installed ({exc}); {INSTALL}"
    cache = Path(frbench.CACHE).expanduser()
    fetch = f"run `frbench-download {key}` where GitHub is reachable (cache {cache}, env FRBENCH_CACHE)"
    manifest_path = cache / "manifest.json"
    if not manifest_path.is_file():
        return False, f"frbench's manifest is not cached: {fetch}"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return False, f"{manifest_path} is unreadable ({exc}): run `frbench-download --refresh --list`"
    entry = manifest.get(key)
    if entry is None:
        models = sorted(k for k in manifest if not k.startswith(("__", "retinaface_")))
        return False, f"frbench has no model '{key}'; it has: {', '.join(models) or '(none)'}"
    folder = cache / entry.get("target_name", key)
    if not all((folder / rel).is_file() for rel in entry.get("contents", {}).values()):
        return False, f"frbench model '{key}' is not downloaded: {fetch}"
    return True, None


class FRBenchCrops(torch.nn.Module):
    """FRBench's normalisation and backbone on crops already framed for it (RGB in [0, 1])."""

    def __init__(self, fr):
        super().__init__()
        self.fr = fr

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.fr(crops * 255.0, need_crop=False, tta=(), l2_normalize=True).embeddings


@TARGETS.register("frbench")
class FRBench(TorchTarget):
    Config = FRBenchConfig
    framing = Framing.arcface(112)  # replaced by the model's own template once loaded
    preprocessing = "the model's own template, size, channels, mean and std (frbench config)"

    @classmethod
    def availability(cls, **preset) -> tuple[bool, str | None]:
        return _cached_model(FRBenchConfig(**preset).key)

    def build_network(self) -> torch.nn.Module:
        ok, reason = _cached_model(self.config.key)
        if not ok:
            raise RuntimeError(reason)
        import frbench

        frbench.configure(update_check=False)
        fr = frbench.FR(self.config.backbone, self.config.loss, self.config.dataset, detector=self.config.detector,
                        eager_load=True)
        height, width = fr.input_size
        if height != width:
            raise RuntimeError(f"frbench model '{self.config.key}' takes {height}x{width} crops; only square")
        self.framing = Framing(height, tuple(map(tuple, fr.preprocessor.template.tolist())))
        self.embedding_dim = fr.embedding_dim
        return FRBenchCrops(fr)
