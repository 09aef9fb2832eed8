"""Similarity alignment of photos onto the aligned canvas (``Aligner``), cached on disk.

Photos are decoded by ``bench.data.decoding`` (oriented, 8-bit RGB, large ones downscaled) and their faces found by
a detector of ``bench.data.detectors``. Landmarks, boxes and matrices are in the pixels of the oriented full-size
photo, whatever size was decoded.

Every confident face of a photo is kept (in the pick rule's order). ``Aligner.align`` takes the first: the
labelling rule of a dataset such as LFW (the face at the centre). Where photos are filed by identity,
``bench.data.identity_faces.IdentityFaces`` instead takes, from a photo with several faces, the one a face
recogniser finds closest to the identity's other photos, and skips the photo, with the reason, when none is.

The cache key is the photo's content (SHA-256 of its bytes) and the alignment settings, so renaming or moving
a photo reuses the work and changing the canvas or detector recomputes it. A cache file carries the digest of
its arrays and is recomputed when it does not match. A photo that cannot be read or holds no face is recorded
as such (with the reason) and skipped by callers, never fatal.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from bench.core.checksums import arrays_digest, file_sha256
from bench.core.paths import bench_home
from bench.core.storage import remove_orphans, write_bytes
from bench.core.work_log import WorkLog
from bench.data.canvas import CANVAS_SIZE, CANVAS_TEMPLATE, similarity_fit
from bench.data.decoding import FaceError, decode_photo
from bench.data.detectors import MTCNNDetector, make_detector


@dataclass(frozen=True)
class AlignSettings:
    detector: str = "mtcnn"  # facenet-pytorch 2.5.3 MTCNN (weights ship in its wheel), or "scrfd" (bench.data.scrfd)
    pick: str = "center"  # order of the faces of a photo: "center" (LFW's labelling rule) or "largest"
    min_prob: float = 0.90
    canvas_size: int = CANVAS_SIZE
    max_side: int = 2048  # a larger photo is decoded downscaled to this longest side
    max_faces: int = 8  # faces kept per photo, first by the pick rule
    # bump when the alignment code changes meaningfully (2: float landmarks in the cache; 3: EXIF orientation,
    # 16-bit/palette conversion, downscaled decode, every confident face kept, digest inside the cache file)
    version: int = 3

    def key(self) -> str:
        payload = json.dumps({**asdict(self), "template": CANVAS_TEMPLATE.round(4).tolist()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class AlignedFace:
    canvas: np.ndarray  # H x W x 3 uint8 RGB
    matrix: np.ndarray  # 2 x 3, photo pixels -> canvas pixels (its inverse puts an edited canvas back)
    landmarks: np.ndarray  # 5 x 2 in photo pixels
    box: np.ndarray  # x0, y0, x1, y1
    prob: float
    key: str = ""  # content key: the photo's SHA-256, the alignment settings and which of its faces this is
    faces_in_photo: int = 1



def face_order(boxes: np.ndarray, probs: np.ndarray, shape: tuple[int, int], settings: AlignSettings) -> list[int]:
    """Indices of the confident faces, the pick rule's choice first."""
    keep = np.flatnonzero(probs >= settings.min_prob)
    if len(keep) == 0:
        raise FaceError(f"no face with detector confidence >= {settings.min_prob}")
    if settings.pick == "largest":
        area = (boxes[keep, 2] - boxes[keep, 0]) * (boxes[keep, 3] - boxes[keep, 1])
        rank = -area
    elif settings.pick == "center":
        h, w = shape
        centre = (boxes[keep, :2] + boxes[keep, 2:]) / 2
        rank = ((centre - [w / 2, h / 2]) ** 2).sum(1)
    else:
        raise ValueError(f"unknown face pick rule '{settings.pick}' (use 'center' or 'largest')")
    return [int(keep[i]) for i in np.argsort(rank, kind="stable")[: settings.max_faces]]


def warp_to_canvas(rgb: np.ndarray, landmarks: np.ndarray, size: int = CANVAS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    matrix = similarity_fit(landmarks, CANVAS_TEMPLATE * size / CANVAS_SIZE)
    canvas = cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return canvas, matrix


def to_full_size(matrix: np.ndarray, landmarks: np.ndarray, box: np.ndarray,
                 scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matrix, landmarks and box found on a photo decoded at ``scale`` (x, y), in full-size photo pixels."""
    sx, sy = scale
    full_matrix = matrix.copy()
    full_matrix[:, 0] *= sx
    full_matrix[:, 1] *= sy
    return full_matrix, landmarks / [sx, sy], box / [sx, sy, sx, sy]


_FIELDS = ("canvases", "matrices", "landmarks", "boxes", "probs")


class Aligner:
    """Detect, align and cache. ``faces(path)`` returns every confident face of a photo (the pick rule's choice
    first), ``align(path)`` the first; both raise :class:`FaceError` for a photo without a usable face."""

    def __init__(self, settings: AlignSettings | None = None, device: str = "cpu", cache_dir: Path | None = None,
                 log: Callable[[str], None] | None = None, work: WorkLog | None = None):
        self.settings = settings or AlignSettings()
        self.device = device
        self.cache_dir = (Path(cache_dir) if cache_dir else bench_home() / "canvases") / self.settings.key()
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self._detector: MTCNNDetector | None = None
        self.work = work  # notes every photo it detects and aligns (not cache hits), see bench.core.work_log
        remove_orphans(self.cache_dir, "*/*.tmp.npz")  # left by runs killed while writing

    def _cache_path(self, digest: str) -> Path:
        return self.cache_dir / digest[:2] / f"{digest}.npz"

    def align(self, path: str | os.PathLike, cached: bool = True) -> AlignedFace:
        """``cached=False`` detects and aligns even when the cache holds the photo (``bench perf``'s naive loop),
        and leaves the cache as it is: a result made with another thread count can differ in a few pixels, and a run
        (or a Ray worker) that reads the photo later must get the canvas the run started with."""
        return self.faces(path, cached)[0]

    def faces(self, path: str | os.PathLike, cached: bool = True) -> list[AlignedFace]:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise FaceError(f"cannot read {path}: {exc}") from exc
        where = self._cache_path(digest)
        arrays = self._load(where) if cached and where.exists() else None
        if arrays is None:
            if self.work is not None:
                self.work.note("aligned", self.settings.key(), [digest])
            try:
                arrays = self._detect_and_warp(path)
            except FaceError as exc:
                if cached:
                    self._save(where, {"failure": np.array(str(exc))})
                raise FaceError(f"{path}: {exc}") from exc
            if cached:
                self._save(where, arrays)
        if "failure" in arrays:
            raise FaceError(f"{arrays['failure']} (cached result; delete {where} to retry)")
        n = len(arrays["probs"])
        return [AlignedFace(arrays["canvases"][i], arrays["matrices"][i], arrays["landmarks"][i], arrays["boxes"][i],
                            float(arrays["probs"][i]), key=f"{digest}:{self.settings.key()}:{i}", faces_in_photo=n)
                for i in range(n)]

    def _detect_and_warp(self, path: str | os.PathLike) -> dict[str, np.ndarray]:
        rgb, scale = decode_photo(path, self.settings.max_side, self.log)
        if self._detector is None:
            self._detector = make_detector(self.settings.detector, self.device)
        boxes, probs, points = self._detector.detect(rgb)
        if len(boxes) == 0:
            raise FaceError("no face found")
        out: dict[str, list] = {name: [] for name in _FIELDS}
        for i in face_order(boxes, probs, rgb.shape[:2], self.settings):
            canvas, matrix = warp_to_canvas(rgb, points[i], self.settings.canvas_size)
            matrix, landmarks, box = to_full_size(matrix, points[i], boxes[i], scale)
            for name, value in zip(_FIELDS, (canvas, matrix, landmarks, box, probs[i]), strict=True):
                out[name].append(value)
        return {name: np.stack(values) for name, values in out.items()}

    @staticmethod
    def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
        np.savez_compressed(buffer := io.BytesIO(), digest=np.array(arrays_digest(arrays)), **arrays)
        write_bytes(path, buffer.getvalue(), "(the alignment cache in BENCH_HOME)")

    def _load(self, path: Path) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None (the file is removed, to be made again) when they do not match the digest
        recorded inside or the file cannot be read."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files if name != "digest"}
                recorded = str(z["digest"]) if "digest" in z.files else ""
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        else:
            if recorded and recorded == arrays_digest(arrays):
                return arrays
            problem = "its arrays do not match the digest recorded when it was made"
        self.log(f"[faces] refusing cached alignment {path}: {problem}; aligning the photo again")
        path.unlink(missing_ok=True)
        return None




def canvases_to_tensor(canvases: list[np.ndarray]) -> torch.Tensor:
    """Stack H x W x 3 uint8 canvases into an N x 3 x H x W float tensor in [0, 1]."""
    if not canvases:
        return torch.zeros(0, 3, CANVAS_SIZE, CANVAS_SIZE)
    arr = np.stack(canvases).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
