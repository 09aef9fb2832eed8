"""Photos decoded as they are meant to be seen: EXIF orientation applied, 16-bit, palette and transparent images
converted to 8-bit RGB, and a photo larger than ``max_side`` decoded downscaled (JPEG's own reduced decode where
it can: bounded memory and detection time). A photo that cannot be read raises :class:`FaceError`, the error of
every photo that cannot be used (``bench.data.faces`` raises it too, for a photo without a usable face)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bench.data.image_files import open_image


class FaceError(Exception):
    """A photo that cannot be used: unreadable, or no face found. The message says which and why."""


def decode_photo(path: str | os.PathLike, max_side: int | None = None,
                 log: Callable[[str], None] | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """The photo as H x W x 3 uint8 RGB, oriented by its EXIF tag, and the (x, y) scale of the decoded pixels
    relative to the oriented full-size photo (1.0 unless it was longer than ``max_side``) (``open_image``)."""
    try:
        with open_image(path, log, f"decoded at most {max_side} px on its longest side" if max_side else "") as im:
            full = im.size
            if max_side and max(full) > max_side and im.format == "JPEG":
                # JPEG decodes at 1/2, 1/4 or 1/8 size directly: the full-size pixels never sit in memory
                ratio = max_side / max(full)
                im.draft("RGB", (math.ceil(full[0] * ratio), math.ceil(full[1] * ratio)))
            oriented = ImageOps.exif_transpose(im)
            if oriented.size != im.size:  # a quarter turn swaps the full size too
                full = full[::-1]
            rgb = to_rgb(oriented)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise FaceError(f"cannot read image {path}: {exc}") from exc
    if max_side and max(rgb.shape[:2]) > max_side:
        ratio = max_side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * ratio)), max(1, round(rgb.shape[0] * ratio)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
    return rgb, (rgb.shape[1] / full[0], rgb.shape[0] / full[1])


def to_rgb(im: Image.Image) -> np.ndarray:
    """8-bit RGB of any PIL mode: 16-bit and 32-bit grey scaled down (not clipped), transparency composited on
    white, palettes expanded."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        grey = np.asarray(im, dtype=np.float64)
        # a 16-bit file spans 0..65535; an "I"/"F" image holding 8-bit values is left as it is
        full_scale = 65535.0 if im.mode.startswith("I;16") or grey.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(grey / full_scale * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info or im.mode in ("PA", "LA", "RGBA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """The oriented full-size photo as H x W x 3 uint8 RGB (raises :class:`FaceError` when unreadable)."""
    return decode_photo(path)[0]

