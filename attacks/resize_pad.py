"""Random resize-and-pad (Xie et al., "Mitigating adversarial effects through randomization", ICLR 2018): each
photo is shrunk to a random side in [min_scale * S, S] and pasted at a random place on an S x S zero canvas, so
the perturbation no longer lines up with the pixels it was optimised for. Seeded (``seed``): the same photos get
the same draws. The recogniser still takes its framing from the canvas, so the face moves by a few pixels and
shrinks a little, as in the paper's classifier input."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES


@dataclass
class ResizePadConfig:
    min_scale: float = 0.9  # Xie et al.: 299 -> [299, 331) then padded to 331, i.e. about 0.9 of the side
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("resize-and-pad min_scale", self.min_scale, 0.5, 1.0, open_low=True)
        check_range("resize-and-pad seed", self.seed, 0, 2**32 - 1)


def resize_and_pad(arr: np.ndarray, min_scale: float, rng: np.random.Generator) -> np.ndarray:
    size = arr.shape[0]
    side = int(rng.integers(int(np.ceil(min_scale * size)), size + 1))
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    out = np.zeros_like(arr)
    out[top : top + side, left : left + side] = cv2.resize(arr, (side, side), interpolation=cv2.INTER_LINEAR)
    return out


@ADVERSARIES.register("resize-pad")
class ResizePad(Adversary):
    kind = "transform"
    Config = ResizePadConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        rng = np.random.default_rng(int(self.config.seed))
        return per_photo(protected, lambda a: resize_and_pad(a, self.config.min_scale, rng))
