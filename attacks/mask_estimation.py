"""Mask estimation: a universal (personalised) mask is the same in every protected photo of a user, so an
attacker who holds several of them can estimate it and subtract it before recognition.

For a user's published photos x_i = c_i + m (clean photo plus the shared mask; clipping and 8-bit rounding
aside), each photo's *residual* r_i = x_i - D(x_i) after a smoother D keeps the mask's fine structure and the
photo's own detail. The photos' own details differ from photo to photo and average out; the mask does not.
Estimators of m from the residuals:

- ``mean-highpass``: D is a Gaussian blur (OpenCV), m = mean_i r_i (the least-squares estimate of a shared
  offset in white noise).
- ``median-denoised``: D is non-local means (OpenCV), m = per-pixel median of r_i: robust to the one photo
  whose detail (glasses, an open mouth) is strong where the others are flat.
- ``low-rank``: the mean residual projected on the residuals' leading principal direction (uncentred SVD):
  what all photos share lies along it, one photo's idiosyncrasies mostly do not.

The estimate is clipped to +-``max_amplitude`` (a public tool's budget is public: anything larger is face
content, not mask) and subtracted: x_i - m. With fewer than ``min_photos`` photos the photos pass unchanged
(one photo's residual is its own detail, not a mask). Per-image methods (PGD, Fawkes, LowKey) draw a different
perturbation for each photo, so the estimate is mostly face detail and subtracting it changes little: that
contrast is what this adversary measures. ``mask-estimation`` is the estimator that did best in our runs
(``median-denoised``: against Chameleon on 4 LFW users it left PSR@1 8/25/0/8 % on SFace / dlib / FaceRes /
MobileFace, against 20/25/17/11 for the mean high-pass and 46/40/22/11 for the low-rank estimate;
docs/adversaries.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch

from attacks.base import Adversary, check_range, per_photo
from bench.api import ADVERSARIES

ESTIMATORS = ("mean-highpass", "median-denoised", "low-rank")


@dataclass
class MaskEstimationConfig:
    estimator: str = "mean-highpass"
    sigma: float = 1.5  # Gaussian high-pass (mean-highpass, low-rank), canvas pixels
    nlm_h: float = 10.0  # non-local means strength (median-denoised), 0..255 scale
    max_amplitude: float = 16 / 255  # the largest budget among the public tools we benchmark
    min_photos: int = 2

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"mask estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        check_range("mask-estimation sigma", self.sigma, 0.0, 20.0, open_low=True)
        check_range("mask-estimation nlm_h", self.nlm_h, 0.0, 100.0, open_low=True)
        check_range("mask-estimation max_amplitude", self.max_amplitude, 0.0, 1.0, open_low=True)
        check_range("mask-estimation min_photos", self.min_photos, 2, 10_000)


def residuals(photos: torch.Tensor, config: MaskEstimationConfig) -> torch.Tensor:
    """Each photo minus its smoothed self (N x 3 x H x W)."""
    if config.estimator == "median-denoised":
        h = float(config.nlm_h)
        smooth = per_photo(photos, lambda a: cv2.fastNlMeansDenoisingColored(a, None, h, h, 7, 21))
    else:
        s = float(config.sigma)
        smooth = per_photo(photos, lambda a: cv2.GaussianBlur(a.astype("float32"), (0, 0), sigmaX=s, sigmaY=s) / 255.0)
    return photos - smooth


def estimate_mask(photos: torch.Tensor, config: MaskEstimationConfig) -> torch.Tensor:
    """The shared perturbation of one user's protected photos (3 x H x W), clipped to +-max_amplitude."""
    res = residuals(photos, config)
    if config.estimator == "median-denoised":
        mask = res.median(dim=0).values
    elif config.estimator == "low-rank":
        flat = res.flatten(1).double()
        _, _, vh = torch.linalg.svd(flat, full_matrices=False)
        direction = vh[0]
        mask = ((flat @ direction).mean() * direction).reshape(res.shape[1:]).to(res.dtype)
    else:
        mask = res.mean(dim=0)
    return mask.clamp(-config.max_amplitude, config.max_amplitude)


@ADVERSARIES.register("mask-estimation", estimator="median-denoised")
@ADVERSARIES.register("mask-mean-highpass", estimator="mean-highpass")
@ADVERSARIES.register("mask-median-denoised", estimator="median-denoised")
@ADVERSARIES.register("mask-low-rank", estimator="low-rank")
class MaskEstimation(Adversary):
    kind = "estimation"
    Config = MaskEstimationConfig

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        if len(protected) < self.config.min_photos:
            return protected
        return (protected - estimate_mask(protected, self.config).unsqueeze(0)).clamp(0, 1)
