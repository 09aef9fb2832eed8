"""Opening image files with Pillow, its decompression-bomb warning turned into one clear line.

Pillow warns (``DecompressionBombWarning``) about an image above ``Image.MAX_IMAGE_PIXELS`` and refuses one above
twice that (``DecompressionBombError``, which callers report as an unreadable photo). The warning would reach the
user as a raw Python warning with a source line; :func:`open_image` says instead which photo, how large, and what
is done with it.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from PIL import Image


def large_image_note(path: str | os.PathLike, size: tuple[int, int], what: str) -> str:
    limit = (Image.MAX_IMAGE_PIXELS or 0) / 1e6
    return (f"{path}: {size[0]}x{size[1]} px ({size[0] * size[1] / 1e6:.0f} Mpx) is above Pillow's "
            f"decompression-bomb limit of {limit:.0f} Mpx; {what}")


def open_image(path: str | os.PathLike, note: Callable[[str], None] | None = None, what: str = "") -> Image.Image:
    """``Image.open(path)``; for an image above Pillow's warning limit (below its hard limit), ``note`` (by
    default: standard error) gets one line (``what``: what is done with the image) in place of the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombWarning:
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(path)
    (note or (lambda line: print(line, file=sys.stderr)))(large_image_note(path, im.size, what or "decoded in full"))
    return im
