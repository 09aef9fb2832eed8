"""The recogniser owner's own people: the photos an adaptive adversary may train on.

People of the data set that the run does not evaluate, nor put in its gallery when it can avoid it (``exclude``):
those with at least ``photos`` alignable photos, in a fixed order (a hash of the name, so the choice spreads over
the alphabet and does not depend on the run), ``photos`` each. The adversary never sees an evaluated user.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from bench.context import PublicPhotos
from bench.data import Dataset
from bench.faces import Aligner, FaceError, canvases_to_tensor, file_sha256


def owner_photos(dataset: Dataset, exclude: Iterable[str], identities: int, photos: int,
                 aligner: Aligner) -> PublicPhotos:
    excluded = set(exclude)
    order = sorted((n for n, p in dataset.identities.items() if n not in excluded and len(p) >= photos),
                   key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    canvases, labels = [], []
    digest = hashlib.sha256(f"{identities}x{photos}".encode())
    for name in order:
        faces = []
        for path in dataset.identities[name]:
            try:
                faces.append((aligner.align(path).canvas, file_sha256(path)))
            except FaceError:
                continue  # a photo MTCNN cannot align is no training pair
            if len(faces) == photos:
                break
        if len(faces) < photos:
            continue
        for canvas, sha in faces:
            canvases.append(canvas)
            labels.append(name)
            digest.update(sha.encode())
        if len(set(labels)) == identities:
            break
    if len(set(labels)) < 2:
        raise ValueError(f"{dataset.root} has {len(set(labels))} people outside the run with {photos} alignable "
                         "photos; an adaptive adversary needs its own people (use a larger data root)")
    return PublicPhotos(canvases_to_tensor(canvases), labels, digest.hexdigest()[:24])
