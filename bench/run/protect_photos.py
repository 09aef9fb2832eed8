"""Protect whole photos with a fitted protector: find the faces, protect the user's (or every) face on the
aligned canvas, put the change back into the photo at full resolution, save it in the photo's own format.

``PhotoProtection`` is the library side of ``bench protect``; it never stops on one bad photo: each photo ends as
``protected``, ``no-face`` (copied unchanged), ``not-the-user`` (faces found, none matched; copied unchanged) or
``unreadable`` (not written), with the reason.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.checksums import mismatch, write_checked
from bench.core.paths import bench_home, embedded_data_root
from bench.data.canvas import from_uint8, to_uint8
from bench.data.photo import PhotoError, align_face, detect_faces, load_photo, put_back, save_photo
from bench.measures.calibrate import align_photos
from bench.measures.calibration_store import load_calibration
from bench.measures.verification import impostor_top_scores, threshold_at_far
from bench.run.budget import check_budget


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
    template, against a threshold at FAR 1e-2. That is the surrogate's LFW calibration when there is one
    (``bench targets``; the most recent of any LFW copy: protecting photos is no benchmark run); without one, the
    threshold at the same FAR over every cross-identity pair of the built-in LFW subset (``builtin_threshold``).
    A face under the threshold is not the user's, so a photo of someone else is copied unchanged."""

    def __init__(self, surrogate: Any, template: torch.Tensor, log: Callable[[str], None] = print):
        self.surrogate = surrogate
        self.template = F.normalize(template.flatten().float(), dim=0)
        self.threshold = load_calibration(surrogate.name).get("thresholds", {}).get("far1e-2")
        self.source = "LFW calibration"
        if self.threshold is None:
            self.threshold, photos = builtin_threshold(surrogate, log)
            self.source = (f"measured on the built-in LFW subset, {photos} photos; `bench targets --only "
                           f"{surrogate.name}` with the full LFW calibrates it")

    def pick(self, canvases: torch.Tensor) -> tuple[list[int], list[float]]:
        with torch.no_grad():
            sims = (self.surrogate.embed(canvases) @ self.template.to(canvases.device)).tolist()
        return [i for i, s in enumerate(sims) if s >= self.threshold], sims

    def describe(self) -> str:
        return f"{self.surrogate.name} cosine >= {self.threshold:.3f} (FAR 1e-2, {self.source})"


# Photos per person of the built-in subset for the threshold without a calibration: its 56 people give 224 photos
# and about 25,000 cross-identity pairs (about 250 above the FAR 1e-2 threshold), aligned in about a minute.
BUILTIN_PHOTOS_PER_PERSON = 4


def builtin_threshold(surrogate: Any, log: Callable[[str], None] = print) -> tuple[float, int]:
    """The cosine threshold at FAR 1e-2 over every cross-identity pair of the built-in LFW subset (the first
    ``BUILTIN_PHOTOS_PER_PERSON`` photos of each person) under ``surrogate``, as ``bench.measures.calibrate`` measures it on
    full LFW, and the number of photos it came from; kept in ``$BENCH_HOME/user-threshold/`` for these weights and
    this input."""
    from bench.data.datasets import load_identity_folders
    from bench.data.faces import Aligner
    from bench.measures.calibrate import (
        CALIBRATION_VERSION,
        FARS,
        embed_photos,
        input_signature,
        weights_sha256,
    )

    key = {"weights_sha256": weights_sha256(surrogate), "input": input_signature(surrogate),
           "calibration_version": CALIBRATION_VERSION}
    path = bench_home() / "user-threshold" / f"{surrogate.name}.json"
    if path.is_file() and mismatch(path) is None:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["threshold"], cached["photos"]
    data = load_identity_folders(embedded_data_root(), "lfw")
    groups = {name: group[:BUILTIN_PHOTOS_PER_PERSON] for name, group in data.identities.items()}
    photos = [p for group in groups.values() for p in group]
    log(f"{surrogate.name} is not calibrated: measuring its FAR 1e-2 threshold on the built-in LFW subset "
        f"({len(photos)} photos of {len(groups)} people, once)")
    aligner = Aligner(device=str(surrogate.device))
    aligned, _ = align_photos(aligner, photos)
    labels = [name for name, group in groups.items() for _ in group]
    photos = [p for p, ok in zip(photos, aligned, strict=True) if ok]
    ids = sorted(set(labels))
    label_t = torch.tensor([ids.index(n) for n, ok in zip(labels, aligned, strict=True) if ok])
    emb = F.normalize(embed_photos(surrogate, aligner, photos), dim=1).cpu()
    n, far = len(emb), FARS["far1e-2"]
    top, impostors = impostor_top_scores(emb, label_t, math.floor(far * n * (n - 1) / 2) + 1)
    threshold = threshold_at_far(top, impostors, far)
    write_checked(path, lambda tmp: tmp.write_text(json.dumps(
        {"key": key, "threshold": threshold, "photos": n, "impostor_pairs": impostors}, indent=2)))
    return threshold, n


class PhotoProtection:
    """``bounds``: the method's declared budget (kind -> bound), checked on every protected face as a run checks it
    (``bench.run.budget.check_budget``: a face over it raises ``BudgetExceeded``); ``method`` names it there."""

    def __init__(self, protector: Any, detector: Any, device: str, matcher: UserMatcher | None = None,
                 feather: int = 12, quality: int = 95, strip_metadata: bool = False,
                 bounds: dict[str, float] | None = None, method: str = "the protector"):
        self.protector = protector
        self.bounds = bounds or {}
        self.method = method
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
        out = self.protector.protect(clean).detach()
        check_budget(self.method, self.bounds, out, clean, f"face of {source.name}")
        protected = to_uint8(out)
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


__all__ = ["PhotoProtection", "PhotoResult", "UserMatcher", "builtin_threshold", "photo_files"]
