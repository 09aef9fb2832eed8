"""Face detection (MTCNN) and similarity alignment of photos onto the aligned canvas, cached on disk.

A photo is decoded as it is meant to be seen: EXIF orientation applied, 16-bit, palette and transparent images
converted to 8-bit RGB, and a photo larger than ``max_side`` decoded downscaled (JPEG's own reduced decode where
it can: bounded memory and detection time). Landmarks, boxes and matrices are in the pixels of the oriented
full-size photo, whatever size was decoded.

Every confident face of a photo is kept (in the pick rule's order). ``Aligner.align`` takes the first: the
labelling rule of a dataset such as LFW (the face at the centre). Where photos are filed by identity,
:class:`IdentityFaces` instead takes, from a photo with several faces, the one a face recogniser finds closest to
the identity's other photos, and skips the photo, with the reason, when none is.

The cache key is the photo's content (SHA-256 of its bytes) and the alignment settings, so renaming or moving
a photo reuses the work and changing the canvas or detector recomputes it. A cache file carries the digest of
its arrays and is recomputed when it does not match. A photo that cannot be read or holds no face is recorded
as such (with the reason) and skipped by callers, never fatal.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from bench.core.checksums import arrays_digest, file_sha256
from bench.core.paths import bench_home
from bench.core.storage import remove_orphans, write_bytes
from bench.core.work_log import WorkLog
from bench.data.canvas import CANVAS_SIZE, CANVAS_TEMPLATE, similarity_fit
from bench.data.image_files import open_image


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
        from bench.data.scrfd import SCRFDDetector

        return SCRFDDetector(device)
    if name == "yunet":
        from bench.data.yunet import YuNetDetector

        return YuNetDetector(device)
    raise ValueError(f"unknown face detector '{name}' (use 'mtcnn', 'scrfd' or 'yunet')")


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


@dataclass(frozen=True)
class IdentityCheck:
    """How the face of an identity is told apart in a photo holding several: each face is embedded by ``target``
    (a registered face recogniser) and compared, by cosine similarity, with the mean embedding of the identity's
    single-face photos (or, where it has none, of the first face of each of its photos). The closest face is
    taken when it reaches ``min_cosine``; otherwise the photo is skipped with the reason."""

    target: str = "sface"
    # OpenCV Zoo's same-person cosine threshold for SFace (opencv_zoo models/face_recognition_sface, 0.363)
    min_cosine: float = 0.363
    references: int = 8  # photos whose faces make the identity's reference embedding, at most


@dataclass
class IdentityFaces:
    """Aligns the photos of identity folders and takes, from each photo, the face that is the folder's person.

    ``embed`` maps a list of uint8 canvases to unit-norm embeddings (N x D numpy): the recogniser named in
    ``check``, handed in by the caller (the run creates it on first use, ``bench.run.prepare.recogniser_embed``), so
    that aligning photos never loads a model itself. Without it, or when it fails, photos with several faces are
    skipped with that reason.
    """

    aligner: Aligner
    check: IdentityCheck = field(default_factory=IdentityCheck)
    embed: Callable[[list[np.ndarray]], np.ndarray] | None = None
    unavailable: str | None = None

    def align(self, identity: str, photos: list[Path], others: Sequence[Path] = (),
              progress: Callable[[], None] = lambda: None) -> tuple[dict[Path, AlignedFace], dict[Path, str]]:
        """The chosen face of each usable photo of ``photos``, and why each other photo was skipped. ``others``
        are more photos of the identity, aligned only when references are short."""
        found: dict[Path, list[AlignedFace]] = {}
        skipped: dict[Path, str] = {}
        for path in photos:
            try:
                found[path] = self.aligner.faces(path)
            except FaceError as exc:
                skipped[path] = str(exc)
            progress()
        several = [p for p, faces in found.items() if len(faces) > 1]
        chosen = {p: faces[0] for p, faces in found.items() if len(faces) == 1}
        if several:
            chosen.update(self._resolve(identity, {p: found[p] for p in several}, found, others, skipped))
        return {p: chosen[p] for p in photos if p in chosen}, skipped

    def _resolve(self, identity: str, several: dict[Path, list[AlignedFace]], found: dict[Path, list[AlignedFace]],
                 others: Sequence[Path], skipped: dict[Path, str]) -> dict[Path, AlignedFace]:
        references = self._reference_canvases(found, [p for p in others if p not in found])
        embed = self.embed if references and self.unavailable is None else None
        if embed is None:
            why = (f"no other photo of {identity} to compare them with" if not references else
                   f"face recogniser '{self.check.target}' unavailable ({self.unavailable or 'none given'})")
            skipped.update({p: f"{len(faces)} faces; cannot tell which is {identity}: {why}"
                            for p, faces in several.items()})
            return {}
        try:
            reference = embed(references).mean(0)
            sims_of = {path: embed([face.canvas for face in faces]) for path, faces in several.items()}
        except Exception as exc:  # e.g. a recogniser whose embeddings are not finite: no face is chosen by it
            self.unavailable, self.embed = f"{type(exc).__name__}: {exc}", None
            return self._resolve(identity, several, found, others, skipped)
        reference /= max(float(np.linalg.norm(reference)), 1e-12)
        chosen = {}
        for path, faces in several.items():
            sims = sims_of[path] @ reference
            best = int(np.argmax(sims))
            if sims[best] >= self.check.min_cosine:
                chosen[path] = faces[best]
            else:
                skipped[path] = (f"{len(faces)} faces, none matches {identity}'s other photos (best cosine "
                                 f"similarity {sims[best]:.2f} < {self.check.min_cosine}, {self.check.target})")
        return chosen

    def _reference_canvases(self, found: dict[Path, list[AlignedFace]], others: Sequence[Path]) -> list[np.ndarray]:
        """Canvases that stand for the identity: its single-face photos (aligning ``others`` while short of
        ``check.references``); where it has none, the first face of each of its photos when there are at least
        three (a majority of right faces outweighs the rest); else none."""
        pool = dict(found)
        single = [faces[0].canvas for faces in found.values() if len(faces) == 1]
        for path in others:
            if len(single) >= self.check.references:
                break
            try:
                pool[path] = self.aligner.faces(path)
            except FaceError:
                continue
            if len(pool[path]) == 1:
                single.append(pool[path][0].canvas)
        if single:
            return single[: self.check.references]
        return [faces[0].canvas for faces in pool.values()][: self.check.references] if len(pool) >= 3 else []


def canvases_to_tensor(canvases: list[np.ndarray]) -> torch.Tensor:
    """Stack H x W x 3 uint8 canvases into an N x 3 x H x W float tensor in [0, 1]."""
    if not canvases:
        return torch.zeros(0, 3, CANVAS_SIZE, CANVAS_SIZE)
    arr = np.stack(canvases).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
