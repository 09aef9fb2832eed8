"""Total-variation denoising (Chambolle's algorithm, scikit-image ``denoise_tv_chambolle``), one of the input
purifications of Guo et al., "Countering adversarial images using input transformations" (ICLR 2018). A float
tool: the recogniser gets its output unrounded."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attacks.base import Adversary, check_range, per_photo, skimage_restoration
from bench.api import ADVERSARIES


@dataclass
class TVDenoiseConfig:
    weight: float = 0.1  # scikit-image's default; larger removes more

    def __post_init__(self) -> None:
        check_range("TV weight", self.weight, 0.0, 10.0, open_low=True)


@ADVERSARIES.register("tv-denoise-0.05", weight=0.05)
@ADVERSARIES.register("tv-denoise-0.1", weight=0.1)
class TVDenoise(Adversary):
    kind = "transform"
    Config = TVDenoiseConfig
    run_packages = ("scikit-image",)

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        w = float(self.config.weight)
        denoise = skimage_restoration(self.name).denoise_tv_chambolle
        return per_photo(protected, lambda a: denoise(a / 255.0, weight=w, channel_axis=-1))
