"""Differentiable image-quality measures on N x 3 x H x W tensors in [0, 1]: SSIM, DSSIM, PSNR.

SSIM follows Wang et al. (IEEE TIP 2004): 11 x 11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, data range
1, computed per channel on the valid region (no padding) and averaged: the convention of scikit-image's
``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``. (torchmetrics averages over
reflect-padded borders too and differs by ~3e-3 on a face crop.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image mean SSIM (N,), differentiable in both arguments."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two N x C x H x W tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    c = x.shape[1]
    c1, c2 = 0.01**2, 0.03**2
    # The five local means in one pass: the 2-D Gaussian window is the outer product of a 1-D one, so a row
    # and a column pass give the same blur (to float rounding) at 2 x 11 taps a pixel instead of 121.
    g = _gaussian(window, sigma, x)
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)
    k = stack.shape[1]
    blurred = F.conv2d(stack, g.view(1, 1, 1, window).expand(k, 1, 1, window), groups=k)
    blurred = F.conv2d(blurred, g.view(1, 1, window, 1).expand(k, 1, window, 1), groups=k)
    mu_x, mu_y, xx, yy, xy = blurred.split(c, 1)
    sxx = xx - mu_x**2
    syy = yy - mu_y**2
    sxy = xy - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def dssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural dissimilarity (1 - SSIM) / 2 per image (N,)."""
    return (1 - ssim(x, y)) / 2


def psnr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-image PSNR in dB (N,) for data range 1; identical images give +inf."""
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(eps)), torch.full_like(mse, float("inf")))
