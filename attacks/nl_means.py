"""Non-local means denoising (Buades et al., CVPR 2005), OpenCV's ``fastNlMeansDenoisingColored`` on the 8-bit
canvas: luminance strength ``h``, colour strength ``h_color`` (0..255 scale), 7 px patches, 21 px search window
(OpenCV's recommended sizes)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES


@dataclass
class NLMeansConfig:
    h: float = 10.0
    h_color: float = 10.0
    template: int = 7
    search: int = 21

    def __post_init__(self) -> None:
        check_range("non-local means h", self.h, 0.0, 100.0, open_low=True)
        check_range("non-local means h_color", self.h_color, 0.0, 100.0)
        check_range("non-local means template", self.template, 3, 21)
        check_range("non-local means search", self.search, self.template, 63)


@ADVERSARIES.register("nl-means-5", h=5.0, h_color=5.0)
@ADVERSARIES.register("nl-means-10", h=10.0, h_color=10.0)
class NLMeans(Adversary):
    kind = "transform"
    Config = NLMeansConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        c = self.config
        return per_photo(protected, lambda a: cv2.fastNlMeansDenoisingColored(
            a, None, float(c.h), float(c.h_color), int(c.template), int(c.search)))
