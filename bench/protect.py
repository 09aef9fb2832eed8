"""Protect whole photos with a fitted protector: find the faces, protect the user's (or every) face on the
aligned canvas, put the change back into the photo at full resolution, save it in the photo's own format.

``PhotoProtection`` is the library side of ``bench protect``; it never stops on one bad photo: each photo ends as
``protected``, ``no-face`` (copied unchanged), ``not-the-user`` (faces found, none matched; copied unchanged) or
``unreadable`` (not written), with the reason.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.calibration_store import load_calibration
from bench.canvas import from_uint8, to_uint8
from bench.photo import PhotoError, align_face, detect_faces, load_photo, put_back, save_photo


@dataclass
class PhotoResult:
    source: str
    status: str  # protected | no-face | not-the-user | unreadable
    output: str | None = None
    faces: int = 0
    protected_faces: int = 0
    reason: str | None = None
    megapixels: float = 0.0
    ms: float = 0.0  # detect + align + protect + put back
    notes: list[str] = field(default_factory=list)


class UserMatcher:
    """Tells the user's face from others: cosine similarity of a face's embedding under one surrogate to the user's
    template, against that surrogate's threshold at FAR 1e-2 when it is calibrated (``bench targets``; the most
    recent calibration of any LFW copy: protecting photos is no benchmark run); without one, the best-matching face
    of each photo is taken, and the summary says so."""

    def __init__(self, surrogate: Any, template: torch.Tensor):
        self.surrogate = surrogate
        self.template = F.normalize(template.flatten().float(), dim=0)
        self.threshold = load_calibration(surrogate.name).get("thresholds", {}).get("far1e-2")

    def pick(self, canvases: torch.Tensor) -> tuple[list[int], list[float]]:
        with torch.no_grad():
            sims = (self.surrogate.embed(canvases) @ self.template.to(canvases.device)).tolist()
        if self.threshold is None:
            return [int(np.argmax(sims))], sims
        return [i for i, s in enumerate(sims) if s >= self.threshold], sims

    def describe(self) -> str:
        if self.threshold is None:
            return (f"{self.surrogate.name} (uncalibrated: the best-matching face of each photo; run `bench targets` "
                    "to calibrate)")
        return f"{self.surrogate.name} cosine >= {self.threshold:.3f} (FAR 1e-2)"


class PhotoProtection:
    def __init__(self, protector: Any, detector: Any, device: str, matcher: UserMatcher | None = None,
                 feather: int = 12, quality: int = 95, strip_metadata: bool = False):
        self.protector = protector
        self.detector = detector
        self.device = device
        self.matcher = matcher  # None: protect every face
        self.feather = feather
        self.quality = quality
        self.strip_metadata = strip_metadata

    def protect_file(self, source: Path, target: Path) -> PhotoResult:
        result = PhotoResult(str(source), "unreadable")
        try:
            photo = load_photo(source)
        except PhotoError as exc:
            result.reason = str(exc)
            return result
        result.megapixels, result.notes = round(photo.megapixels, 2), photo.notes
        t0 = time.perf_counter()
        faces = detect_faces(photo.rgb, self.detector)
        result.faces = len(faces)
        if not faces:
            result.status, result.reason = "no-face", "no face found; copied unchanged"
            result.output = str(self._copy(source, target))
            return result
        aligned = [align_face(photo.rgb, f.landmarks) for f in faces]
        canvases = from_uint8(torch.from_numpy(np.stack([c for c, _ in aligned])).permute(0, 3, 1, 2)).to(self.device)
        chosen = list(range(len(faces)))
        if self.matcher is not None:
            chosen, sims = self.matcher.pick(canvases)
            if not chosen:
                result.status = "not-the-user"
                result.reason = (f"{len(faces)} face(s), none matched the user (best cosine {max(sims):.3f}); "
                                 "copied unchanged (use --faces all to protect every face)")
                result.output = str(self._copy(source, target))
                return result
        clean = canvases[chosen]
        protected = to_uint8(self.protector.protect(clean).detach())
        change = (from_uint8(protected) - from_uint8(to_uint8(clean))).permute(0, 2, 3, 1).cpu().numpy()
        rgb = photo.rgb
        for k, i in enumerate(chosen):
            rgb = put_back(rgb, change[k], aligned[i][1], self.feather)
        result.ms = 1000 * (time.perf_counter() - t0)
        result.output = str(save_photo(photo, rgb, target, self.quality, self.strip_metadata))
        result.status, result.protected_faces = "protected", len(chosen)
        return result

    @staticmethod
    def _copy(source: Path, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return target


def photo_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (hidden ones aside), sorted: what is not an image is reported, not ignored."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".")
                                                                          for part in p.relative_to(folder).parts))


__all__ = ["PhotoProtection", "PhotoResult", "UserMatcher", "photo_files"]
