"""Differentiable image-quality measures on N x 3 x H x W tensors in [0, 1]: SSIM, DSSIM, PSNR.

SSIM follows Wang et al. (IEEE TIP 2004): 11 x 11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, data range
1, computed per channel on the valid region (no padding) and averaged: the convention of scikit-image's
``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``. (torchmetrics averages over
reflect-padded borders too and differs by ~3e-3 on a face crop.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image mean SSIM (N,), differentiable in both arguments."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two N x C x H x W tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    c = x.shape[1]
    w = _gaussian_window(window, sigma, c, x)
    c1, c2 = 0.01**2, 0.03**2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def dssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural dissimilarity (1 - SSIM) / 2 per image (N,)."""
    return (1 - ssim(x, y)) / 2


def psnr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-image PSNR in dB (N,) for data range 1; identical images give +inf."""
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(eps)), torch.full_like(mse, float("inf")))
