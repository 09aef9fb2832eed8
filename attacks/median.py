"""Median filter (OpenCV ``medianBlur``) on the 8-bit canvas: the feature-squeezing smoother of Xu et al.
(NDSS 2018), which removes sparse and sign-like perturbations better than a linear blur."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES


@dataclass
class MedianConfig:
    size: int = 3  # odd kernel side in canvas pixels

    def __post_init__(self) -> None:
        check_range("median kernel size", self.size, 3, 15)
        if int(self.size) % 2 == 0:
            raise ValueError(f"median kernel size must be odd (3, 5, ..., 15), got {self.size!r}")


@ADVERSARIES.register("median-3", size=3)
@ADVERSARIES.register("median-5", size=5)
class Median(Adversary):
    kind = "transform"
    Config = MedianConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        return per_photo(protected, lambda a: cv2.medianBlur(a, int(self.config.size)))
