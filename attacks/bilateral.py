"""Bilateral filter (OpenCV ``bilateralFilter``): smooths flat regions and keeps edges. Defaults are OpenCV's
tutorial values (diameter 9, sigma colour and space 75 on the 0..255 scale)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES


@dataclass
class BilateralConfig:
    diameter: int = 9
    sigma_color: float = 75.0  # on the 0..255 scale
    sigma_space: float = 75.0  # in pixels

    def __post_init__(self) -> None:
        check_range("bilateral diameter", self.diameter, 1, 31)
        check_range("bilateral sigma_color", self.sigma_color, 0.0, 255.0, open_low=True)
        check_range("bilateral sigma_space", self.sigma_space, 0.0, 255.0, open_low=True)


@ADVERSARIES.register("bilateral")
class Bilateral(Adversary):
    kind = "transform"
    Config = BilateralConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        c = self.config
        return per_photo(protected, lambda a: cv2.bilateralFilter(a, int(c.diameter), c.sigma_color, c.sigma_space))
