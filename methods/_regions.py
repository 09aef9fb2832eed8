"""Face regions on the canvas, placed from the ArcFace template landmarks (``bench.data.canvas.CANVAS_TEMPLATE``).

Not a plug-in. Every aligned canvas puts the eyes, nose and mouth corners on the same pixels, so one fixed region
covers the same part of every face. Sizes are in units of the inter-ocular distance d (44 canvas pixels).
Each function returns a 1 x 1 x S x S map, 1 inside the region and 0 outside, for an S x S canvas.

- ``eyeglass_frame``: two elliptical rims around the eyes (outer semi-axes 0.5 d x 0.36 d, inner 0.3 d x 0.18 d),
  joined at the nose bridge, and two temple arms 0.12 d thick reaching 0.95 d sideways from each eye: the shape of
  the frames of Sharif et al. (CCS 2016), whose colours their attack optimises.
- ``forehead_band``: a 2 d x 0.8 d band centred over the eyes, from 1.35 d to 0.55 d above them: where AdvHat's
  sticker sits on the hat (Komkov & Petiushko, ICPR 2020).
- ``eye_bar``: a 2.1 d x 0.6 d bar centred on the eyes, the black bar of old press photos.
"""

from __future__ import annotations

import torch

from bench.api import CANVAS_SIZE, CANVAS_TEMPLATE

LEFT_EYE, RIGHT_EYE = CANVAS_TEMPLATE[0], CANVAS_TEMPLATE[1]
EYE_DISTANCE = float(RIGHT_EYE[0] - LEFT_EYE[0])
EYES_CENTRE = (LEFT_EYE + RIGHT_EYE) / 2


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates of an S x S canvas in 224-canvas pixels and in units of d (x right, y down)."""
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) * CANVAS_SIZE / size - 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x, y


def _box(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, half_w: float, half_h: float) -> torch.Tensor:
    return ((x - cx).abs() <= half_w * EYE_DISTANCE) & ((y - cy).abs() <= half_h * EYE_DISTANCE)


def _ellipse(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, a: float, b: float) -> torch.Tensor:
    return ((x - cx) / (a * EYE_DISTANCE)) ** 2 + ((y - cy) / (b * EYE_DISTANCE)) ** 2 <= 1


def _as_map(region: torch.Tensor) -> torch.Tensor:
    return region.to(torch.float32)[None, None]


def eyeglass_frame(size: int = CANVAS_SIZE) -> torch.Tensor:
    x, y = _grid(size)
    region = torch.zeros_like(x, dtype=torch.bool)
    for eye, outward in ((LEFT_EYE, -1), (RIGHT_EYE, 1)):
        ex, ey = float(eye[0]), float(eye[1])
        rim = _ellipse(x, y, ex, ey, 0.5, 0.36) & ~_ellipse(x, y, ex, ey, 0.3, 0.18)
        arm_centre = ex + outward * (0.5 + 0.95) / 2 * EYE_DISTANCE
        arm = _box(x, y, arm_centre, ey - 0.1 * EYE_DISTANCE, (0.95 - 0.5) / 2 + 0.05, 0.06)
        region |= rim | arm
    cx, cy = float(EYES_CENTRE[0]), float(EYES_CENTRE[1])
    region |= _box(x, y, cx, cy - 0.1 * EYE_DISTANCE, 0.1, 0.06)  # the bridge
    return _as_map(region)


def forehead_band(size: int = CANVAS_SIZE) -> torch.Tensor:
    x, y = _grid(size)
    cx, cy = float(EYES_CENTRE[0]), float(EYES_CENTRE[1])
    return _as_map(_box(x, y, cx, cy - 0.95 * EYE_DISTANCE, 1.0, 0.4))


def eye_bar(size: int = CANVAS_SIZE) -> torch.Tensor:
    x, y = _grid(size)
    cx, cy = float(EYES_CENTRE[0]), float(EYES_CENTRE[1])
    return _as_map(_box(x, y, cx, cy, 1.05, 0.3))


REGIONS = {"eyeglass-frame": eyeglass_frame, "forehead-band": forehead_band, "eye-bar": eye_bar}


def region_map(name: str, size: int = CANVAS_SIZE) -> torch.Tensor:
    try:
        return REGIONS[name](size)
    except KeyError:
        raise ValueError(f"unknown face region {name!r}; known: {sorted(REGIONS)}") from None


def region_area(name: str) -> float:
    """Share of the 224 canvas the region covers: the area budget of what changes only there."""
    return float(region_map(name).mean())
