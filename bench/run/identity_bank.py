"""The identity bank: candidate target identities for targeted methods (Fawkes, TIP-IM, FaceCloak's anchors).

Fawkes ships precomputed features and photos of public identities and picks its target among them; TIP-IM draws
its target set from a public face set. We ship no such set, so the run builds the bank from its own data root
(``--data-root``, ``$BENCH_DATA``, the shared LFW folder or the embedded subset): among the people of the run's
dataset who are *not* evaluated users, the ``identities`` with the *fewest* photos (ties broken by a hash of the
name, so the choice is fixed and spread over the alphabet), ``photos`` aligned photos each, aligned by the run's
own aligner on the run's device. Users are drawn from people with many photos (a split needs a gallery, probes
and fit photos), so leaving them out changes nothing in practice; a bank identity that also appears in an
evaluation gallery is simply one more wrong answer for the recogniser.

A bank's ``digest`` hashes its names and canvas bytes: it enters the key of every task that uses the bank.

Shapes: ``canvases`` K*P x 3 x 224 x 224 in [0, 1] (identity-major), ``owner`` K*P identity indices; centroids
are K x D unit vectors (the normalised mean embedding of an identity's photos), one matrix per surrogate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data.datasets import Dataset
from bench.run.context import ContextError, IdentityBank


class BankError(ContextError):
    """No usable candidate identities: the message says where they were looked for and what to do."""


def _name_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def bank_digest(names: list[str], canvases: list[np.ndarray]) -> str:
    h = hashlib.sha256("\n".join(names).encode())
    for canvas in canvases:
        h.update(np.ascontiguousarray(canvas).tobytes())
    return h.hexdigest()[:24]


class BankBuilder:
    """Builds banks of any size from one data root, aligning each photo at most once (``bank(identities, photos)``
    is the run context's ``bank_provider``). The bank of the first k identities of a larger request is the
    same people: candidates are taken in one fixed order."""

    def __init__(self, dataset: Dataset, exclude: set[str], aligner: Any, reporter: Any = None):
        self.dataset = dataset  # every identity folder of the run's dataset, listed once (bench.run.assembly)
        self.exclude = set(exclude)
        self.aligner = aligner
        self.reporter = reporter  # bench.core.progress.Reporter, or None
        self._canvases: dict[Path, np.ndarray | None] = {}  # photo -> canvas, None when it did not align
        self._banks: dict[tuple[int, int], IdentityBank] = {}

    def _canvas(self, path: Path) -> np.ndarray | None:
        from bench.data.decoding import FaceError

        if path not in self._canvases:
            try:
                self._canvases[path] = self.aligner.align(path).canvas
            except FaceError:
                self._canvases[path] = None  # a photo MTCNN cannot align is not a usable target photo
        return self._canvases[path]

    def bank(self, identities: int, photos: int) -> IdentityBank:
        if identities < 1 or photos < 1:
            raise BankError("an identity bank needs identities >= 1 and photos >= 1")
        if (identities, photos) not in self._banks:
            self._banks[(identities, photos)] = self._build(identities, photos)
        return self._banks[(identities, photos)]

    def _build(self, identities: int, photos: int) -> IdentityBank:
        from bench.data.datasets import DataError
        from bench.data.faces import canvases_to_tensor

        where = f"{self.dataset.root} ({self.dataset.name})"
        try:
            data = self.dataset.at_least(photos)
        except DataError as exc:
            raise BankError(f"cannot build the identity bank: {exc}") from exc
        people = [n for n in data.identities if n not in self.exclude]
        if len(people) < identities:
            raise BankError(f"the identity bank needs {identities} people with {photos}+ photos who are not "
                            f"evaluated users; {where} has {len(people)}: lower the method's bank size or use a "
                            "larger data root (--data-root)")
        order = sorted(people, key=lambda n: (len(data.identities[n]), _name_key(n)))
        names, canvases = [], []
        if self.reporter is not None:
            self.reporter.phase(f"identity bank {identities}x{photos}", identities)
        for name in order:
            faces = []
            for path in data.identities[name]:
                canvas = self._canvas(path)
                if canvas is not None:
                    faces.append(canvas)
                if len(faces) == photos:
                    break
            if len(faces) == photos:
                names.append(name)
                canvases.extend(faces)
                if self.reporter is not None:
                    self.reporter.advance(name)
            if len(names) == identities:
                break
        if len(names) < identities:
            raise BankError(f"the identity bank needs {identities} people with {photos} alignable photos; {where} "
                            f"gave {len(names)}: lower the method's bank size or use a larger data root")
        owner = torch.arange(len(names)).repeat_interleave(photos)
        return IdentityBank(names, canvases_to_tensor(canvases), owner, where, bank_digest(names, canvases))


__all__ = ["IdentityBank", "BankBuilder", "BankError", "bank_digest"]
