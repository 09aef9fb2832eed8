"""Region patches: adversarial eyeglass frames (``adv-glasses``) and a forehead sticker (``adv-hat``).

One patch per user, fitted on the user's fit photos and worn in every photo (kind "universal": the aligned canvas
puts the region on the same part of every face). Inside the region the colours are free in [0, 1] and replace the
photo; outside nothing changes. Budget: the region's area (``methods._regions``), not a norm: ``linf`` is not
declared, ``area`` is the share of the 224 canvas the region covers, and the harness checks that no more changes.

Loss (minimised) on the identity classifier of ``methods._classifier``: the cross-entropy at the user's label,
negated for dodging (at the chosen bank identity's label, for impersonation), plus ``tv_weight`` times the total
variation of the patch inside the region (both papers smooth the patch so it can be printed). The colours are
sigmoid(w), w optimised by Adam (lr 0.05, 100 iterations over the whole fit set) from grey plus seeded noise.

- ``adv-glasses`` / ``adv-glasses-impersonation``: Sharif et al., "Accessorize to a Crime: Real and Stealthy
  Attacks on State-of-the-Art Face Recognition", ACM CCS 2016 (dodging and impersonation).
- ``adv-hat``: Komkov & Petiushko, "AdvHat: Real-World Adversarial Attack on ArcFace Face ID System", ICPR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from bench.api import METHODS, Target
from methods._classifier import ClassifierConfig, ClassifierMethod
from methods._regions import region_area, region_map
from methods.base import Budget, Protector, seeded_generator


@dataclass
class RegionPatchConfig(ClassifierConfig):
    region: str = "eyeglass-frame"
    iterations: int = 100
    lr: float = 0.05
    tv_weight: float = 1.0
    init_noise: float = 0.5  # uniform noise on w = 0 (grey) at the start

    def __post_init__(self) -> None:
        super().__post_init__()
        region_map(self.region, 8)  # validates the name
        if self.iterations < 1 or self.lr <= 0 or self.tv_weight < 0 or self.init_noise < 0:
            raise ValueError("region patches need iterations >= 1, lr > 0, tv_weight >= 0, init_noise >= 0")


def paste(canvases: torch.Tensor, patch: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    return canvases * (1 - region) + patch * region


def total_variation(patch: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels that both lie in the region."""
    dx = (patch[..., :, 1:] - patch[..., :, :-1]).abs() * region[..., :, 1:] * region[..., :, :-1]
    dy = (patch[..., 1:, :] - patch[..., :-1, :]).abs() * region[..., 1:, :] * region[..., :-1, :]
    return (dx.sum() + dy.sum()) / (3 * region.sum()).clamp_min(1)


class PatchProtector(Protector):
    """Pastes the fitted patch into the region; the photo under it is gone, so there is no key."""

    def __init__(self, patch: torch.Tensor, region: torch.Tensor, info: dict[str, Any]):
        self.patch = patch.detach()
        self.region = region
        self._info = info

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        return paste(canvases, self.patch.to(canvases.device), self.region.to(canvases.device))

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def state(self) -> dict[str, torch.Tensor]:
        return {"patch": (self.patch * self.region).cpu(), "region": self.region.cpu()}


@METHODS.register("adv-glasses")
@METHODS.register("adv-glasses-impersonation", goal="impersonation")
@METHODS.register("adv-hat", region="forehead-band")
class RegionPatch(ClassifierMethod):
    kind = "universal"
    Config = RegionPatchConfig
    effort = "iterations"
    PAPERS: ClassVar[dict[str, str]] = {
        "eyeglass-frame": "Sharif et al., Accessorize to a Crime: Real and Stealthy Attacks on State-of-the-Art Face "
                          "Recognition, ACM CCS 2016",
        "forehead-band": "Komkov & Petiushko, AdvHat: Real-World Adversarial Attack on ArcFace Face ID System, "
                         "ICPR 2020",
    }
    paper = "; ".join(PAPERS.values())
    deviations: ClassVar[tuple[str, ...]] = (
        "digital only: no printability (non-printability score) term, no physical transformations (AdvHat's "
        "bending and rotation), a fixed region on the aligned canvas; Adam on sigmoid colours with our schedule",
    )

    @classmethod
    def describe(cls, **preset: Any) -> dict[str, Any]:
        paper = cls.PAPERS.get(cls.Config(**preset).region, cls.paper)
        return {**super().describe(**preset), "paper": paper,
                "reference": f"{paper}; digital form on the identity classifier (methods._classifier)"}

    def budget(self) -> Budget:
        return Budget(area=region_area(self.config.region), note=f"colours unbounded in the {self.config.region}")

    @property
    def holds_key(self) -> bool:
        return False  # a pasted patch replaces the pixels under it: there is nothing to subtract

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        c = self.config
        model = self.classifier(photos, surrogates, seed)
        region = region_map(c.region, photos.shape[-1]).to(photos.device, photos.dtype)
        gen = seeded_generator(seed, photos.device)
        shape = (1, *photos.shape[1:])
        w = ((torch.rand(shape, generator=gen, device=photos.device, dtype=photos.dtype) * 2 - 1) * c.init_noise)
        w.requires_grad_(True)
        optimiser = torch.optim.Adam([w], lr=c.lr)
        targeted = c.goal == "impersonation"
        for _ in range(c.iterations):
            optimiser.zero_grad()
            patch = torch.sigmoid(w)
            for batch in photos.split(c.batch_size):
                # model.loss is to be ascended; Adam descends, so negate it (mean over the fit photos)
                (-model.loss(paste(batch, patch, region), targeted) / len(photos)).backward(retain_graph=True)
            (c.tv_weight * total_variation(patch, region)).backward()
            optimiser.step()
        patch = torch.sigmoid(w.detach())
        info = {**self.base_info(model, surrogates), "fit_photos": len(photos), "region": c.region,
                "area": float(region.mean())}
        return PatchProtector(patch, region, info)
