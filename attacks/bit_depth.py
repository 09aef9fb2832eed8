"""Bit-depth reduction, the colour squeezer of feature squeezing (Xu et al., NDSS 2018): every channel keeps
``bits`` bits (2**bits levels, rounded). A perturbation smaller than half a level vanishes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attacks.base import Adversary, check_range
from bench.api import ADVERSARIES, to_uint8


@dataclass
class BitDepthConfig:
    bits: int = 4

    def __post_init__(self) -> None:
        check_range("bit depth", self.bits, 1, 7)


@ADVERSARIES.register("bit-depth-5", bits=5)
@ADVERSARIES.register("bit-depth-4", bits=4)
@ADVERSARIES.register("bit-depth-3", bits=3)
class BitDepth(Adversary):
    kind = "transform"
    Config = BitDepthConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        levels = 2 ** int(self.config.bits) - 1
        published = to_uint8(protected).float() / 255.0  # what the published file holds
        return torch.round(published * levels) / levels
