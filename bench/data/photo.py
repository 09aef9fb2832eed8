"""Whole photos: decode any photo a user has, find its faces, take each onto the aligned canvas, and put an
edited canvas back into the photo at full resolution.

- Decoding applies the EXIF orientation first, turns 16-bit, palette, grey, CMYK and alpha images into 8-bit RGB
  (the alpha channel is kept aside and written back), and keeps EXIF and ICC metadata for saving.
- Faces are detected on a copy at most ``detect_side`` pixels on its long side (MTCNN on 30 megapixels is slow
  and finds nothing more), landmarks scaled back to the photo.
- Putting back adds only the *change* a method made on the canvas (protected - clean), warped into the photo by
  the inverse similarity transform and feathered to zero at the canvas border: the photo keeps its own pixels and
  sharpness everywhere the method did not act, and no seam shows. Only the face's bounding region is touched, so
  memory stays bounded on large photos.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bench.data.canvas import CANVAS_SIZE, CANVAS_TEMPLATE, invert_affine, similarity_fit
from bench.data.decoding import to_rgb
from bench.data.image_files import open_image

EXIF_ORIENTATION = 0x0112
SAVE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}


class PhotoError(Exception):
    """A photo that cannot be decoded; the message says which file and why."""


@dataclass
class Photo:
    rgb: np.ndarray  # H x W x 3 uint8, upright (EXIF orientation applied)
    format: str  # the file's format as PIL names it ("JPEG", "PNG" ...)
    alpha: np.ndarray | None = None  # H x W uint8, when the file had transparency
    exif: bytes | None = None  # with the orientation reset to 1 (the pixels are upright now)
    icc_profile: bytes | None = None
    notes: list[str] = field(default_factory=list)  # conversions made on reading (16-bit, CMYK ...)

    @property
    def megapixels(self) -> float:
        return self.rgb.shape[0] * self.rgb.shape[1] / 1e6


def _to_rgb8(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """8-bit RGB (and alpha, kept apart to be written back) from any PIL mode."""
    if im.mode.startswith("I") or im.mode == "F":
        notes.append(f"{im.mode} grey scaled to 8 bits")
    if im.mode == "CMYK":
        notes.append("CMYK converted to RGB (saved as RGB)")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return to_rgb(im), None


def load_photo(path: str | os.PathLike) -> Photo:
    large: list[str] = []
    try:
        with open_image(path, large.append, "processed in full") as im:
            fmt = im.format or "PNG"
            icc = im.info.get("icc_profile")
            exif = im.getexif()
            upright = ImageOps.exif_transpose(im)
            notes: list[str] = large
            if exif.get(EXIF_ORIENTATION, 1) != 1:
                notes.append(f"EXIF orientation {exif.get(EXIF_ORIENTATION)} applied")
                exif[EXIF_ORIENTATION] = 1
            rgb, alpha = _to_rgb8(upright, notes)
            if fmt == "CMYK" or im.mode == "CMYK":
                icc = None  # a CMYK profile does not describe the RGB pixels we write
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoError(f"cannot read {path}: {exc}") from exc
    return Photo(rgb, fmt, alpha, exif.tobytes() if len(exif) else None, icc, notes)


def save_photo(photo: Photo, rgb: np.ndarray, path: Path, quality: int = 95, strip_metadata: bool = False) -> Path:
    """Write ``rgb`` in the photo's own format (PNG for formats PIL cannot write), metadata kept unless stripped.
    Returns the path written (its suffix follows the format)."""
    fmt = photo.format if photo.format in SAVE_FORMATS else "PNG"
    path = path.with_suffix(SAVE_FORMATS[fmt]) if path.suffix.lower() not in _suffixes(fmt) else path
    im = Image.fromarray(rgb)
    if photo.alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
        im.putalpha(Image.fromarray(photo.alpha))
    kwargs: dict = {}
    if not strip_metadata:
        if photo.exif:
            kwargs["exif"] = photo.exif
        if photo.icc_profile:
            kwargs["icc_profile"] = photo.icc_profile
    if fmt == "JPEG":
        # 4:4:4 keeps the perturbation's colour detail that 4:2:0 subsampling would halve
        kwargs.update(quality=quality, subsampling=0)
    elif fmt == "WEBP":
        kwargs.update(quality=quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    im.save(tmp, format=fmt, **kwargs)
    os.replace(tmp, path)
    return path


def _suffixes(fmt: str) -> tuple[str, ...]:
    return {"JPEG": (".jpg", ".jpeg"), "TIFF": (".tif", ".tiff")}.get(fmt, (SAVE_FORMATS[fmt],))


@dataclass
class DetectedFace:
    box: np.ndarray  # x0, y0, x1, y1 in photo pixels
    landmarks: np.ndarray  # 5 x 2 in photo pixels
    prob: float


def detect_faces(rgb: np.ndarray, detector, min_prob: float = 0.9, detect_side: int = 1600) -> list[DetectedFace]:
    """Every face of the photo with confidence >= ``min_prob``; ``detector.detect(rgb)`` -> boxes, probs, points."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, detect_side / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    boxes, probs, points = detector.detect(small)
    return [DetectedFace(boxes[i] / scale, points[i] / scale, float(probs[i]))
            for i in range(len(boxes)) if probs[i] >= min_prob]


def face_matrix(landmarks: np.ndarray, size: int = CANVAS_SIZE) -> np.ndarray:
    """2 x 3 similarity mapping photo pixels onto the canvas."""
    return similarity_fit(landmarks, CANVAS_TEMPLATE * size / CANVAS_SIZE)


def _canvas_roi(matrix: np.ndarray, shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """The photo-pixel box (x0, y0, x1, y1) the canvas covers, clipped to the photo."""
    inv = invert_affine(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ inv.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    h, w = shape
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def align_face(rgb: np.ndarray, landmarks: np.ndarray, size: int = CANVAS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The face on the canvas (size x size x 3 uint8) and the 2 x 3 photo -> canvas matrix.

    Only the region the canvas covers is resampled; a face much larger than the canvas is first shrunk with area
    averaging so that the canvas does not alias.
    """
    import cv2

    matrix = face_matrix(landmarks, size)
    x0, y0, x1, y1 = _canvas_roi(matrix, rgb.shape[:2], size)
    roi = rgb[y0:y1, x0:x1]
    shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    local = matrix @ shift  # ROI pixels -> canvas
    scale = float(np.sqrt(abs(np.linalg.det(local[:, :2]))))  # canvas pixels per photo pixel
    if scale < 0.5 and roi.size:
        shrink = min(1.0, 2 * scale)
        roi = cv2.resize(roi, (max(1, round(roi.shape[1] * shrink)), max(1, round(roi.shape[0] * shrink))),
                         interpolation=cv2.INTER_AREA)
        # resized pixel centres: p_small = (p + 0.5) * shrink - 0.5
        c = 0.5 / shrink - 0.5
        local = local @ np.array([[1 / shrink, 0, c], [0, 1 / shrink, c], [0, 0, 1.0]])
    canvas = cv2.warpAffine(np.ascontiguousarray(roi), local, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)
    return canvas, matrix


def feather_weights(size: int = CANVAS_SIZE, feather: int = 12) -> np.ndarray:
    """size x size weights: 1 inside, a raised-cosine ramp to 0 over ``feather`` pixels at the border."""
    if feather <= 0:
        return np.ones((size, size), np.float32)
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    ramp = np.clip(d / feather, 0, 1)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


def put_back(rgb: np.ndarray, change: np.ndarray, matrix: np.ndarray, feather: int = 12) -> np.ndarray:
    """The photo with a canvas-space change (size x size x 3 float, protected - clean on the 0..1 scale) added
    through the inverse of ``matrix``, feathered at the canvas border. Returns a new uint8 photo."""
    import cv2

    size = change.shape[0]
    x0, y0, x1, y1 = _canvas_roi(matrix, rgb.shape[:2], size)
    out = rgb.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    to_roi = invert_affine(matrix @ shift)  # canvas -> ROI pixels
    weighted = change.astype(np.float32) * feather_weights(size, feather)[..., None] * 255.0
    delta = cv2.warpAffine(weighted, to_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = out[y0:y1, x0:x1].astype(np.float32) + delta
    out[y0:y1, x0:x1] = np.clip(np.round(roi), 0, 255).astype(np.uint8)
    return out


__all__ = ["Photo", "PhotoError", "DetectedFace", "load_photo", "save_photo", "detect_faces", "align_face",
           "put_back", "feather_weights", "face_matrix"]
