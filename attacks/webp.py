"""WebP re-compression (lossy, libwebp through Pillow): what many platforms serve instead of JPEG.

Same role as ``jpeg``: a transform any re-encoding platform applies. Quality 1..100 (Pillow's ``quality``), the
encoder's default method 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attacks.base import Adversary, check_range, per_photo
from attacks.jpeg import encode_decode
from bench.api import ADVERSARIES


@dataclass
class WebPConfig:
    quality: int = 75

    def __post_init__(self) -> None:
        check_range("WebP quality", self.quality, 1, 100)


@ADVERSARIES.register("webp-75", quality=75)
@ADVERSARIES.register("webp-50", quality=50)
class WebP(Adversary):
    kind = "transform"
    Config = WebPConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        return per_photo(protected, lambda a: encode_decode(a, "WEBP", quality=int(self.config.quality)))
