"""Face detection (MTCNN) and similarity alignment of photos onto the aligned canvas, cached on disk.

The cache key is the photo's content (SHA-256 of its bytes) and the alignment settings, so renaming or moving
a photo reuses the work and changing the canvas or detector recomputes it. A photo that cannot be read or holds
no face is recorded as such (with the reason) and skipped by callers, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from bench.canvas import CANVAS_SIZE, CANVAS_TEMPLATE, similarity_fit
from bench.paths import bench_home


@dataclass(frozen=True)
class AlignSettings:
    detector: str = "mtcnn"  # facenet-pytorch 2.5.3 MTCNN (weights ship in its wheel), or "scrfd" (bench.scrfd)
    pick: str = "center"  # which face when several: "center" (LFW's labelling rule) or "largest"
    min_prob: float = 0.90
    canvas_size: int = CANVAS_SIZE
    version: int = 2  # bump when the alignment code changes meaningfully (2: float landmarks in the cache)

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


class FaceError(Exception):
    """A photo that cannot be used: unreadable, or no face found. The message says which and why."""


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FaceError(f"cannot read image {path}: {exc}") from exc


class MTCNNDetector:
    """facenet-pytorch's MTCNN, created once per process and device."""

    _lock = threading.Lock()
    _instances: dict[str, object] = {}

    def __init__(self, device: str = "cpu"):
        with self._lock:
            if device not in self._instances:
                from facenet_pytorch import MTCNN

                self._instances[device] = MTCNN(keep_all=True, device=device)
        self.model = self._instances[device]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            boxes, probs, points = self.model.detect(Image.fromarray(rgb), landmarks=True)
        if boxes is None:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        # facenet-pytorch returns object arrays here; cached npz files must hold plain floats
        return np.asarray(boxes, np.float64), np.asarray(probs, np.float64), np.asarray(points, np.float64)


def make_detector(name: str, device: str = "cpu"):
    """The face detector named by ``AlignSettings.detector``."""
    if name == "mtcnn":
        return MTCNNDetector(device)
    if name == "scrfd":
        from bench.scrfd import SCRFDDetector

        return SCRFDDetector(device)
    raise ValueError(f"unknown face detector '{name}' (use 'mtcnn' or 'scrfd')")


def choose_face(boxes: np.ndarray, probs: np.ndarray, shape: tuple[int, int], settings: AlignSettings) -> int:
    keep = np.flatnonzero(probs >= settings.min_prob)
    if len(keep) == 0:
        raise FaceError(f"no face with detector confidence >= {settings.min_prob}")
    if settings.pick == "largest":
        area = (boxes[keep, 2] - boxes[keep, 0]) * (boxes[keep, 3] - boxes[keep, 1])
        return int(keep[np.argmax(area)])
    if settings.pick == "center":
        h, w = shape
        centre = (boxes[keep, :2] + boxes[keep, 2:]) / 2
        dist = ((centre - [w / 2, h / 2]) ** 2).sum(1)
        return int(keep[np.argmin(dist)])
    raise ValueError(f"unknown face pick rule '{settings.pick}' (use 'center' or 'largest')")


def warp_to_canvas(rgb: np.ndarray, landmarks: np.ndarray, size: int = CANVAS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    matrix = similarity_fit(landmarks, CANVAS_TEMPLATE * size / CANVAS_SIZE)
    canvas = cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return canvas, matrix


class Aligner:
    """Detect, align and cache. ``align(path)`` returns an :class:`AlignedFace` or raises :class:`FaceError`."""

    def __init__(self, settings: AlignSettings | None = None, device: str = "cpu", cache_dir: Path | None = None):
        self.settings = settings or AlignSettings()
        self.device = device
        self.cache_dir = (cache_dir or bench_home() / "canvases") / self.settings.key()
        self._detector: MTCNNDetector | None = None

    def _cache_path(self, digest: str) -> Path:
        return self.cache_dir / digest[:2] / f"{digest}.npz"

    def align(self, path: str | os.PathLike) -> AlignedFace:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise FaceError(f"cannot read {path}: {exc}") from exc
        cached = self._cache_path(digest)
        if cached.exists():
            return self._load(cached)
        try:
            face = self._align_uncached(read_rgb(path))
        except FaceError as exc:
            self._save_failure(cached, str(exc))
            raise FaceError(f"{path}: {exc}") from exc
        self._save(cached, face)
        return face

    def _align_uncached(self, rgb: np.ndarray) -> AlignedFace:
        if self._detector is None:
            self._detector = make_detector(self.settings.detector, self.device)
        boxes, probs, points = self._detector.detect(rgb)
        if len(boxes) == 0:
            raise FaceError("no face found")
        i = choose_face(boxes, probs, rgb.shape[:2], self.settings)
        canvas, matrix = warp_to_canvas(rgb, points[i], self.settings.canvas_size)
        return AlignedFace(canvas, matrix, points[i], boxes[i], float(probs[i]))

    def _save(self, path: Path, face: AlignedFace) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp, canvas=face.canvas, matrix=face.matrix, landmarks=face.landmarks, box=face.box, prob=face.prob
        )
        os.replace(tmp, path)

    def _save_failure(self, path: Path, reason: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, failure=np.array(reason))
        os.replace(tmp, path)

    @staticmethod
    def _load(path: Path) -> AlignedFace:
        with np.load(path, allow_pickle=False) as z:
            if "failure" in z:
                raise FaceError(f"{z['failure']} (cached result; delete {path} to retry)")
            return AlignedFace(z["canvas"], z["matrix"], z["landmarks"], z["box"], float(z["prob"]))


def canvases_to_tensor(canvases: list[np.ndarray]) -> torch.Tensor:
    """Stack H x W x 3 uint8 canvases into an N x 3 x H x W float tensor in [0, 1]."""
    if not canvases:
        return torch.zeros(0, 3, CANVAS_SIZE, CANVAS_SIZE)
    arr = np.stack(canvases).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
