"""The aligned face canvas every part exchanges, and the fixed resamples targets take their framing with.

Canvas: float32 N x 3 x 224 x 224, RGB in [0, 1]. A similarity transform puts the five landmarks (left eye, right
eye, nose, left and right mouth corner) on the 112 x 112 ArcFace template scaled by 1.25 and centred, so the
ArcFace crop is the integer box [42, 182) of the canvas and the canvas holds 1.6 times its width: room for every
target's own framing (dlib's 150 px chip is slightly tighter than ArcFace's; FaceRes-deep's box is ~1.3x).

A target declares a :class:`Framing` (its template in its own crop pixels, and the crop size); ``Framing.crop``
takes it from the canvas with one differentiable affine ``grid_sample``, so gradients reach canvas pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# ArcFace / InsightFace 112 x 112 five-point template (pixel centres at integer coordinates, OpenCV convention).
ARCFACE_112 = np.array(
    [(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041)],
    dtype=np.float64,
)

CANVAS_SIZE = 224
CANVAS_SCALE = 1.25  # canvas pixels per ArcFace-112 pixel
CANVAS_OFFSET = (CANVAS_SIZE - 112 * CANVAS_SCALE) / 2  # 42.0
CANVAS_TEMPLATE = ARCFACE_112 * CANVAS_SCALE + CANVAS_OFFSET
# The ArcFace-112 framing as a pixel box of the canvas: where image quality is measured.
FACE_BOX = (int(CANVAS_OFFSET), int(CANVAS_OFFSET + 112 * CANVAS_SCALE))


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) with dst ~ M @ [src, 1].

    Returns a 2 x 3 matrix. Umeyama's closed form, for K >= 2 point pairs.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"similarity_fit needs two K x 2 arrays (K >= 2), got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var_s = (s**2).sum() / len(src)
    scale = (sig * sign).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


@dataclass(frozen=True)
class Framing:
    """A target's own crop: its five-point template in its crop's pixel coordinates, and the crop size."""

    size: int
    template: tuple[tuple[float, float], ...]

    @classmethod
    def arcface(cls, size: int = 112, zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> Framing:
        """The ArcFace template scaled to ``size`` pixels; ``zoom`` > 1 enlarges the face inside the crop."""
        t = (ARCFACE_112 - 56.0) * (size / 112.0) * zoom + size / 2.0 + np.asarray(shift)
        return cls(size, tuple(map(tuple, t.tolist())))

    def crop_to_canvas(self) -> np.ndarray:
        """2 x 3 matrix mapping this crop's pixel coordinates to canvas pixel coordinates."""
        return similarity_fit(np.asarray(self.template), CANVAS_TEMPLATE)

    def pixels_per_canvas_pixel(self) -> float:
        m = self.crop_to_canvas()
        return 1.0 / float(np.sqrt(abs(np.linalg.det(m[:, :2]))))

    def theta(self, canvas_size: int = CANVAS_SIZE) -> torch.Tensor:
        """The ``affine_grid`` matrix (align_corners=False) of this framing on a square canvas."""
        m = self.crop_to_canvas()
        so, sc = float(self.size), float(canvas_size)
        # output normalised u -> output pixel x = ((u + 1) * so - 1) / 2 -> canvas pixel -> canvas normalised
        to_px = np.array([[so / 2, 0, (so - 1) / 2], [0, so / 2, (so - 1) / 2], [0, 0, 1]])
        to_norm = np.array([[2 / sc, 0, 1 / sc - 1], [0, 2 / sc, 1 / sc - 1], [0, 0, 1]])
        full = to_norm @ np.vstack([m, [0, 0, 1]]) @ to_px
        return torch.tensor(full[:2], dtype=torch.float32)

    def crop(self, canvases: torch.Tensor) -> torch.Tensor:
        """Differentiable resample of N x 3 x H x W canvases to N x 3 x size x size crops."""
        if canvases.ndim != 4 or canvases.shape[-1] != canvases.shape[-2]:
            raise ValueError(f"expected N x C x S x S canvases, got {tuple(canvases.shape)}")
        n, c, s, _ = canvases.shape
        shrunk, grid = _resample_plan(self, s, canvases.device, canvases.dtype)
        if shrunk is not None:
            canvases = F.interpolate(canvases, size=shrunk, mode="bilinear", antialias=True, align_corners=False)
        if canvases.device.type != "cpu":  # CUDA's kernel runs a thread per image and pixel: keep the batch
            return F.grid_sample(canvases, grid.expand(n, -1, -1, -1), mode="bilinear", padding_mode="border",
                                 align_corners=False)
        # Every image is sampled on the same grid: on a CPU the batch is folded into the channels, so the sampling
        # coordinates and weights are computed once for all (the same numbers, image by image; ~25% faster).
        stacked = canvases.reshape(1, n * c, *canvases.shape[2:])
        crops = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return crops.view(n, c, self.size, self.size)


@lru_cache(maxsize=64)
def _resample_plan(framing: Framing, canvas_size: int, device: torch.device,
                   dtype: torch.dtype) -> tuple[int | None, torch.Tensor]:
    """How ``framing`` is taken from a canvas of ``canvas_size`` pixels: the size of the antialiased pre-shrink
    (None when there is none) and the 1 x size x size x 2 ``grid_sample`` grid. Built once per framing, canvas
    size, device and dtype (the numpy fits and ``affine_grid`` cost more than the resample of a small batch)."""
    # Bilinear sampling aliases when shrinking; pre-shrink the whole canvas with an antialiased resize.
    # Normalised coordinates do not depend on resolution, so theta stays valid.
    shrink = framing.pixels_per_canvas_pixel() * CANVAS_SIZE / canvas_size
    shrunk = max(1, round(canvas_size * shrink)) if shrink < 0.8 else None
    # a plain tensor, even when first asked for in inference mode: autograd saves it for grid_sample's backward
    with torch.inference_mode(False), torch.no_grad():
        theta = framing.theta(CANVAS_SIZE).to(device, dtype)[None]
        grid = F.affine_grid(theta, [1, 1, framing.size, framing.size], align_corners=False)
    return shrunk, grid


def face_region(canvases: torch.Tensor) -> torch.Tensor:
    """The ArcFace-framed face box of canvases (no resampling): where image quality is judged."""
    a, b = FACE_BOX
    return canvases[..., a:b, a:b]


def to_uint8(canvases: torch.Tensor) -> torch.Tensor:
    """Round to 8 bits, as a published photo is."""
    return (canvases.clamp(0, 1) * 255).round().to(torch.uint8)


def from_uint8(canvases: torch.Tensor) -> torch.Tensor:
    return canvases.to(torch.float32) / 255.0
