"""Non-adversarial obfuscations: Gaussian blur, pixelation, Gaussian noise and an eye bar.

They use no recogniser at all (the surrogates are ignored) and set the quality/protection trade-off that the
adversarial methods must beat: McPherson et al., "Defeating Image Obfuscation with Deep Learning" (arXiv
1609.00408, 2016) and Oh et al., "Faceless Person Recognition: Privacy Implications in Social Media" (ECCV 2016)
showed recognisers see through blur, mosaics and partial covers. Each works on the whole 224 canvas (the eye bar
on its region, ``methods._regions``); the strengths are ours, chosen to keep the face recognisable to a person:

- ``gaussian-blur``: sigma 4 canvas pixels (about 3% of the face box), reflect padding. No norm bound.
- ``pixelate``: mosaic of 8 x 8-pixel blocks (28 x 28 blocks on the canvas), each its mean colour. No norm bound.
- ``gaussian-noise``: i.i.d. noise of sigma 8/255 per pixel and channel, clipped at 3 sigma (L-inf 24/255),
  seeded by the run's seed.
- ``eye-bar``: a black bar over both eyes; budget: its area.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bench.api import METHODS, Target
from methods._regions import region_area, region_map
from methods._universal import gaussian_blur
from methods.base import Budget, Method, Protector, seeded_generator

REFERENCE = ("McPherson et al., Defeating Image Obfuscation with Deep Learning, arXiv 1609.00408, 2016; Oh et al., "
             "Faceless Person Recognition, ECCV 2016")


class ObfuscationProtector(Protector):
    def __init__(self, apply, seed: int, info: dict[str, Any]):
        self.apply = apply
        self.seed = seed
        self._info = info

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.apply(canvases, seeded_generator(self.seed, canvases.device)).clamp(0, 1)

    def info(self) -> dict[str, Any]:
        return dict(self._info)


class Obfuscation(Method):
    """A fixed image transformation; subclasses define ``apply(canvases, generator)``."""

    kind = "per-image"
    paper = REFERENCE
    deviations: ClassVar[tuple[str, ...]] = ("the strength is ours; the papers sweep several",)

    def apply(self, canvases: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        return ObfuscationProtector(self.apply, seed, {"obfuscation": self.name, "config": vars(self.config)})


@dataclass
class BlurConfig:
    sigma: float = 4.0  # canvas pixels

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise ValueError("gaussian-blur needs sigma > 0")


@METHODS.register("gaussian-blur")
class GaussianBlur(Obfuscation):
    Config = BlurConfig
    reference = REFERENCE

    def budget(self) -> Budget:
        return Budget(note=f"Gaussian blur sigma {self.config.sigma:g} px, unbounded")

    def apply(self, canvases: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return gaussian_blur(canvases, self.config.sigma)


@dataclass
class PixelateConfig:
    block: int = 8  # canvas pixels per mosaic block

    def __post_init__(self) -> None:
        if self.block < 2:
            raise ValueError("pixelate needs block >= 2")


@METHODS.register("pixelate")
class Pixelate(Obfuscation):
    Config = PixelateConfig
    reference = REFERENCE

    def budget(self) -> Budget:
        return Budget(note=f"mosaic of {self.config.block} px blocks, unbounded")

    def apply(self, canvases: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        size = canvases.shape[-1]
        blocks = max(1, round(size / self.config.block))
        return F.interpolate(F.adaptive_avg_pool2d(canvases, blocks), size=size, mode="nearest")


@dataclass
class NoiseConfig:
    sigma: float = 8 / 255
    clip_sigmas: float = 3.0

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.clip_sigmas <= 0:
            raise ValueError("gaussian-noise needs sigma > 0 and clip_sigmas > 0")


@METHODS.register("gaussian-noise")
class GaussianNoise(Obfuscation):
    Config = NoiseConfig
    reference = REFERENCE

    def budget(self) -> Budget:
        return Budget(linf=self.config.sigma * self.config.clip_sigmas,
                      note=f"Gaussian noise sigma {255 * self.config.sigma:.3g}/255")

    def apply(self, canvases: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        bound = self.config.sigma * self.config.clip_sigmas
        noise = torch.randn(canvases.shape, generator=gen, device=canvases.device, dtype=canvases.dtype)
        return canvases + (noise * self.config.sigma).clamp(-bound, bound)


@dataclass
class EyeBarConfig:
    colour: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        ok = (isinstance(self.colour, list | tuple) and len(self.colour) == 3
              and all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 for v in self.colour))
        if not ok:
            raise ValueError(f"colour must be an RGB triple in [0, 1] such as [0, 0, 0], got {self.colour!r}")
        self.colour = tuple(float(v) for v in self.colour)


@METHODS.register("eye-bar")
class EyeBar(Obfuscation):
    Config = EyeBarConfig
    reference = REFERENCE

    def budget(self) -> Budget:
        return Budget(area=region_area("eye-bar"), note="the eyes covered by a flat bar")

    def apply(self, canvases: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        region = region_map("eye-bar", canvases.shape[-1]).to(canvases.device, canvases.dtype)
        colour = torch.tensor(self.config.colour, device=canvases.device, dtype=canvases.dtype).view(1, 3, 1, 1)
        return canvases * (1 - region) + colour * region
