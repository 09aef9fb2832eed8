"""Resize down and back up: drops the high frequencies a perturbation lives in (a down-scaled upload, a
thumbnail re-enlarged). OpenCV, area averaging down and bicubic up, on the 8-bit canvas."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES


@dataclass
class ResizeConfig:
    scale: float = 0.5  # side of the down-scaled photo over the canvas side

    def __post_init__(self) -> None:
        check_range("resize scale", self.scale, 0.1, 1.0, open_low=True)


def down_up(arr, scale: float):
    h, w = arr.shape[:2]
    small = cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@ADVERSARIES.register("resize-0.5", scale=0.5)
@ADVERSARIES.register("resize-0.75", scale=0.75)
class Resize(Adversary):
    kind = "transform"
    Config = ResizeConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        return per_photo(protected, lambda a: down_up(a, self.config.scale))
