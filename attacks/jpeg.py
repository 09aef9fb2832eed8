"""JPEG re-compression, the commonest way a platform (or an attacker) launders a perturbation.

Used against anti-FR masks in FaceCure (Radiya-Dixit et al., ICLR 2022) and most robustness studies; qualities
90/75/50/30 are the usual grid. Each canvas is rounded to 8 bits, encoded with libjpeg (Pillow, 4:2:0 chroma
subsampling, the Pillow default) and decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES


@dataclass
class JPEGConfig:
    quality: int = 75

    def __post_init__(self) -> None:
        check_range("JPEG quality", self.quality, 1, 95)


def encode_decode(arr: np.ndarray, fmt: str, **options) -> np.ndarray:
    """One 8-bit RGB array through a Pillow codec and back."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **options)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def jpeg_roundtrip(canvases: torch.Tensor, quality: int) -> torch.Tensor:
    return per_photo(canvases, lambda a: encode_decode(a, "JPEG", quality=int(quality)))


@ADVERSARIES.register("jpeg")
@ADVERSARIES.register("jpeg-90", quality=90)
@ADVERSARIES.register("jpeg-75", quality=75)
@ADVERSARIES.register("jpeg-50", quality=50)
@ADVERSARIES.register("jpeg-30", quality=30)
class JPEG(Adversary):
    kind = "transform"
    Config = JPEGConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        return jpeg_roundtrip(protected, self.config.quality)
