"""Photo space: what an attacker who scrapes whole photos makes of a protected face (docs/photos.md).

A protected canvas is turned into the photo its user would post: the method's change (protected canvas minus
clean canvas) is put back into the user's original photo through the inverse of the alignment matrix, feathered
at the canvas border (``bench.data.photo.put_back``), and the photo is saved as JPEG at the suite's quality, as a
platform re-encodes uploads. The attacker decodes it, finds faces with its own detector (the target's
``attacker_detector``: ``yunet``, OpenCV's pipeline, unless the target names another that
``bench.data.detectors.make_detector`` knows) and aligns them onto the canvas (``bench.data.photo.align_face``).

Which detected face is the user's: the one whose box overlaps the face the harness protected most (the attacker
is given its best case: it never mistakes a bystander for the user). A photo where no detected face overlaps
that box by ``MIN_OVERLAP`` (intersection over union) is *missed*: the attacker has no face to match, the query
counts as protected, and the miss is counted apart.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from bench.data.canvas import CANVAS_SIZE, from_uint8
from bench.data.decoding import read_rgb
from bench.data.detectors import make_detector
from bench.data.photo import align_face, detect_faces, put_back
from bench.measures.psr import UserOutcome

DEFAULT_DETECTOR = "yunet"
MIN_PROB = 0.9  # OpenCV Zoo's YuNet default score threshold, and the harness's MTCNN threshold
MIN_OVERLAP = 0.3  # intersection over union with the protected face's box


def attacker_detector(target) -> str:
    """The detector an attacker using ``target`` runs (its ``attacker_detector`` attribute, else YuNet)."""
    return getattr(target, "attacker_detector", DEFAULT_DETECTOR)


def published_photo(original: np.ndarray, clean: np.ndarray, protected: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The user's photo with the method's change on the canvas (H x W x 3 uint8 canvases) put back."""
    change = (protected.astype(np.float32) - clean.astype(np.float32)) / 255.0
    return put_back(original, change, matrix)


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """The photo as a platform stores it: baseline JPEG at ``quality``, PIL's default 4:2:0 chroma subsampling."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def as_tensor(data: bytes) -> torch.Tensor:
    """JPEG bytes as a uint8 tensor (how a task artifact keeps them)."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode(data: bytes | torch.Tensor) -> np.ndarray:
    raw = data.numpy().tobytes() if isinstance(data, torch.Tensor) else data
    with Image.open(io.BytesIO(raw)) as im:
        return np.asarray(im.convert("RGB"))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class AttackerView:
    """One attacker detector: the user's face in a published photo, aligned onto the canvas, or None (missed).
    Results are kept per photo content, so adversaries and targets sharing the detector detect once."""

    def __init__(self, detector: str, device: str = "cpu"):
        self.name = detector
        self.detector = make_detector(detector, device)
        self._seen: dict[tuple[bytes, tuple[float, ...]], np.ndarray | None] = {}

    def crop(self, data: bytes | torch.Tensor, protected_box: np.ndarray) -> np.ndarray | None:
        raw = data.numpy().tobytes() if isinstance(data, torch.Tensor) else data
        memo = (raw, tuple(np.round(protected_box, 3)))
        if memo not in self._seen:
            rgb = decode(raw)
            faces = detect_faces(rgb, self.detector, min_prob=MIN_PROB)
            scored = [(overlap(f.box, protected_box), i) for i, f in enumerate(faces)]
            best = max(scored, default=(0.0, -1))
            self._seen[memo] = (align_face(rgb, faces[best[1]].landmarks)[0] if best[0] >= MIN_OVERLAP else None)
        return self._seen[memo]

    def crops(self, photos: Sequence[bytes | torch.Tensor], boxes: Sequence[np.ndarray]
              ) -> tuple[torch.Tensor, int]:
        """The found faces as an N x 3 x H x W uint8 tensor, and how many photos were missed."""
        found = [c for c in (self.crop(p, b) for p, b in zip(photos, boxes, strict=True)) if c is not None]
        if not found:
            return torch.zeros(0, 3, CANVAS_SIZE, CANVAS_SIZE, dtype=torch.uint8), len(photos)
        tensor = torch.from_numpy(np.stack(found)).permute(0, 3, 1, 2).contiguous()
        return tensor, len(photos) - len(found)


@dataclass
class PhotoPair:
    original: np.ndarray
    published: np.ndarray


def publish_user(photos: Sequence[Path], faces: dict, canvases: dict, protected: torch.Tensor, quality: int
                 ) -> tuple[list[bytes], list[PhotoPair]]:
    """A user's protected probe photos as posted (JPEG bytes at ``quality``) and, for the quality metrics, each
    original photo beside its protected version before the JPEG. ``protected``: N x 3 x H x W uint8 canvases in
    the order of ``photos``; ``faces``/``canvases``: the run's aligned face and clean canvas of each photo."""
    posted, pairs = [], []
    for path, canvas in zip(photos, protected.permute(0, 2, 3, 1).cpu().numpy(), strict=True):
        original = read_rgb(path)
        photo = published_photo(original, canvases[path], canvas, faces[path].matrix)
        posted.append(jpeg_bytes(photo, quality))
        pairs.append(PhotoPair(original, photo))
    return posted, pairs


def clean_posts(photos: Sequence[Path], quality: int) -> list[bytes]:
    """Unprotected photos as posted: the same JPEG, so that clean accuracy is measured on the same path."""
    return [jpeg_bytes(read_rgb(p), quality) for p in photos]


def with_missed(outcome: UserOutcome, found: int, missed: int) -> UserOutcome:
    """A user's outcome over every query: the found faces' outcome (``found`` queries) and ``missed`` queries
    the attacker had no face for, each counted as protected (PSR 1 at every rank and threshold)."""
    total = found + missed
    if total == 0 or missed == 0:
        return outcome
    psr = {name: ((value * found if found else 0.0) + missed) / total for name, value in outcome.psr.items()}
    return UserOutcome(outcome.user, total, psr)


def photo_tensor(rgb: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """An H x W x 3 uint8 photo as a 1 x 3 x H x W tensor in [0, 1] on ``device`` (what photo metrics take)."""
    return from_uint8(torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None]).to(device)


def photo_costs(files: Sequence[Path], detector: str, quality: int, clock: Callable[[], float],
                device: str = "cpu") -> dict[str, float]:
    """Seconds per photo, on ``clock``, of what photo space adds (the dry run's prices), on real photos and through
    the run's own code: ``post_s``, ``publish_user`` (reading a photo, putting a change back into it, JPEG at
    ``quality``); ``quality_s``, the whole-photo quality metrics; ``detect_s``, ``AttackerView.crops`` (decoding a
    posted photo, finding and aligning its face with ``detector``)."""
    from bench.measures.registry import METRICS

    view = AttackerView(detector, device)
    found = {}  # where the harness put each face: canvas, matrix and box
    for path in files:
        rgb = read_rgb(path)
        faces = detect_faces(rgb, view.detector, min_prob=MIN_PROB)
        if faces:
            found[path] = (*align_face(rgb, faces[0].landmarks), faces[0].box)
    if not found:
        raise ValueError(f"{detector} found no face in {len(files)} photos of the data root to time photo space on")
    paths = list(found)
    canvases = {p: found[p][0] for p in paths}
    aligned = {p: SimpleNamespace(matrix=found[p][1]) for p in paths}
    # any change costs the same to put back
    changed = np.stack([np.clip(canvases[p].astype(np.int16) + 2, 0, 255).astype(np.uint8) for p in paths])
    start = clock()
    posted, pairs = publish_user(paths, aligned, canvases, torch.from_numpy(changed).permute(0, 3, 1, 2), quality)
    published = clock()
    for pair in pairs:
        for metric in METRICS.photo_quality():
            metric.compute(photo_tensor(pair.published, device), photo_tensor(pair.original, device))
    measured = clock()
    view.crops(posted, [found[p][2] for p in paths])
    n = len(paths)
    return {"post_s": (published - start) / n, "quality_s": (measured - published) / n,
            "detect_s": (clock() - measured) / n}


__all__ = ["AttackerView", "PhotoPair", "attacker_detector", "clean_posts", "publish_user", "published_photo",
           "jpeg_bytes", "as_tensor", "decode", "with_missed", "photo_costs", "photo_tensor", "DEFAULT_DETECTOR", "MIN_PROB", "MIN_OVERLAP"]
