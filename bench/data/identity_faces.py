"""The faces of identity folders: from a photo holding several faces, the one a face recogniser finds closest to
the identity's other photos (:class:`IdentityFaces`); a photo where none is gets skipped, with the reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data.decoding import FaceError
from bench.data.faces import AlignedFace, Aligner


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
