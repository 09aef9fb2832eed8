"""Wavelet denoising (scikit-image ``denoise_wavelet``: BayesShrink soft thresholds, noise sigma estimated per
photo unless given, in YCbCr), the denoiser of Prakash et al.'s pixel-deflection defence (CVPR 2018) and of
Guo et al. (ICLR 2018). A float tool: the recogniser gets its output unrounded. Needs PyWavelets."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attacks.base import Adversary, check_range, per_photo, skimage_restoration
from bench.api import ADVERSARIES

MODES = ("soft", "hard")
METHODS = ("BayesShrink", "VisuShrink")


@dataclass
class WaveletConfig:
    sigma: float | None = None  # noise sigma on the 0..1 scale; None: estimated from each photo
    wavelet: str = "db1"
    mode: str = "soft"
    method: str = "BayesShrink"

    def __post_init__(self) -> None:
        if self.sigma is not None:
            check_range("wavelet sigma", self.sigma, 0.0, 1.0, open_low=True)
        if self.mode not in MODES:
            raise ValueError(f"wavelet mode must be one of {MODES}, got {self.mode!r}")
        if self.method not in METHODS:
            raise ValueError(f"wavelet method must be one of {METHODS}, got {self.method!r}")
        import pywt

        if self.wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"wavelet must be a discrete PyWavelets wavelet (db1, db2, sym4, ...), got {self.wavelet!r}")


@ADVERSARIES.register("wavelet")
@ADVERSARIES.register("wavelet-8", sigma=8 / 255)
class Wavelet(Adversary):
    kind = "transform"
    Config = WaveletConfig
    run_packages = ("scikit-image", "PyWavelets")

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        c = self.config
        denoise = skimage_restoration(self.name).denoise_wavelet
        return per_photo(protected, lambda a: denoise(
            a / 255.0, sigma=c.sigma, wavelet=c.wavelet, mode=c.mode, method=c.method, channel_axis=-1,
            convert2ycbcr=True, rescale_sigma=True))
