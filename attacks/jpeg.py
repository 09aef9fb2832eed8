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

from attacks.base import Adversary
from bench.canvas import to_uint8
from bench.registry import ATTACKS


@dataclass
class JPEGConfig:
    quality: int = 75

    def __post_init__(self) -> None:
        if not 1 <= int(self.quality) <= 95:
            raise ValueError(f"JPEG quality must be in 1..95, got {self.quality}")


def jpeg_roundtrip(canvases: torch.Tensor, quality: int) -> torch.Tensor:
    arrays = to_uint8(canvases).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for arr in arrays:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    decoded = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0
    return decoded.to(canvases.device)


@ATTACKS.register("jpeg")
@ATTACKS.register("jpeg-90", quality=90)
@ATTACKS.register("jpeg-75", quality=75)
@ATTACKS.register("jpeg-50", quality=50)
@ATTACKS.register("jpeg-30", quality=30)
class JPEG(Adversary):
    kind = "transform"
    Config = JPEGConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        return jpeg_roundtrip(protected, self.config.quality)
