"""Gaussian blur (OpenCV ``GaussianBlur``, kernel size from sigma) on the 8-bit canvas: the simplest low-pass
defence; sigma in canvas pixels (the face box is 140 px wide)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES


@dataclass
class GaussianBlurConfig:
    sigma: float = 1.0

    def __post_init__(self) -> None:
        check_range("Gaussian blur sigma", self.sigma, 0.0, 10.0, open_low=True)


@ADVERSARIES.register("gaussian-blur-1", sigma=1.0)
@ADVERSARIES.register("gaussian-blur-2", sigma=2.0)
class GaussianBlur(Adversary):
    kind = "transform"
    Config = GaussianBlurConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        s = float(self.config.sigma)
        return per_photo(protected, lambda a: cv2.GaussianBlur(a, (0, 0), sigmaX=s, sigmaY=s))
