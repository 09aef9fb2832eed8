"""Candidate target identities for the targeted per-image methods (Fawkes, TIP-IM).

Fawkes ships precomputed features and photos of public identities and picks its target among them; TIP-IM draws
its target set from a public face set. We ship no such set, so the bank is built from the data root that
``bench.data.resolve_data_root`` finds (the shared LFW folder, ``$BENCH_DATA`` or the embedded subset): the
``identities`` people with the *fewest* photos (ties broken by a hash of the name, so the choice is fixed and
spread over the alphabet), ``photos`` aligned photos each. Users of a benchmark are drawn from people with many
photos (a split needs a gallery, probes and fit photos), so the bank stays clear of them in practice; a bank
identity that also appears in an evaluation gallery is simply one more wrong answer for the recognizer.

Shapes: ``canvases`` K*P x 3 x 224 x 224 in [0, 1] (identity-major), ``owner`` K*P identity indices; centroids
are K x D unit vectors (the normalised mean embedding of an identity's photos), one matrix per surrogate.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import torch

from targets.base import Target


class BankError(RuntimeError):
    """No usable candidate identities: the message says where they were looked for and what to do."""


@dataclass(frozen=True)
class BankSpec:
    identities: int = 40
    photos: int = 2
    data_root: str | None = None  # None: bench.data.resolve_data_root()

    def __post_init__(self) -> None:
        if self.identities < 1 or self.photos < 1:
            raise ValueError("an identity bank needs identities >= 1 and photos >= 1")


@dataclass
class IdentityBank:
    names: list[str]
    canvases: torch.Tensor
    owner: torch.Tensor
    source: str
    _centroids: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def photos_of(self, identity: int) -> torch.Tensor:
        return self.canvases[self.owner == identity]

    def centroids(self, surrogate: Target, device: torch.device) -> torch.Tensor:
        """K x D unit centroids of the bank identities under ``surrogate`` (computed once per surrogate)."""
        key = (getattr(surrogate, "name", type(surrogate).__name__), str(device))
        if key not in self._centroids:
            with torch.no_grad():
                emb = surrogate.embed(self.canvases.to(device))
            sums = torch.zeros(len(self.names), emb.shape[1], device=emb.device, dtype=emb.dtype)
            sums.index_add_(0, self.owner.to(emb.device), emb)
            self._centroids[key] = torch.nn.functional.normalize(sums, dim=1)
        return self._centroids[key].to(device)


def _name_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def bank_availability(spec: BankSpec) -> tuple[bool, str | None]:
    """Cheap check (no alignment) that the data root holds enough candidate identities."""
    from bench.data import DataError, load_identity_folders, resolve_data_root

    try:
        root, how = resolve_data_root(spec.data_root)
        data = load_identity_folders(root, "lfw", min_photos=spec.photos)
    except DataError as exc:
        return False, f"no candidate target identities: {exc}"
    if len(data.identities) < spec.identities:
        return False, (
            f"the identity bank needs {spec.identities} people with {spec.photos}+ photos; {root} ({how}) has "
            f"{len(data.identities)}: lower bank_identities or point BENCH_DATA at a larger identity folder"
        )
    return True, None


@functools.lru_cache(maxsize=4)
def load_bank(spec: BankSpec) -> IdentityBank:
    """Align and cache the bank's photos (MTCNN results are cached on disk by ``bench.faces``)."""
    from bench.data import DataError, load_identity_folders, resolve_data_root
    from bench.faces import Aligner, FaceError, canvases_to_tensor

    try:
        root, how = resolve_data_root(spec.data_root)
        data = load_identity_folders(root, "lfw", min_photos=spec.photos)
    except DataError as exc:
        raise BankError(f"cannot build the target-identity bank: {exc}") from exc
    order = sorted(data.identities, key=lambda n: (len(data.identities[n]), _name_key(n)))
    aligner = Aligner()
    names, canvases = [], []
    for name in order:
        faces = []
        for path in data.identities[name]:
            try:
                faces.append(aligner.align(path).canvas)
            except FaceError:
                continue  # a photo MTCNN cannot align is not a usable target photo
            if len(faces) == spec.photos:
                break
        if len(faces) == spec.photos:
            names.append(name)
            canvases.extend(faces)
        if len(names) == spec.identities:
            break
    if len(names) < spec.identities:
        raise BankError(
            f"the identity bank needs {spec.identities} people with {spec.photos} alignable photos; {root} ({how}) "
            f"gave {len(names)}: lower bank_identities / bank_photos or use a larger data root"
        )
    owner = torch.arange(len(names)).repeat_interleave(spec.photos)
    return IdentityBank(names, canvases_to_tensor(canvases), owner, f"{root} ({how})")


def user_features(surrogates: list[Target], photos: torch.Tensor) -> list[torch.Tensor]:
    """Clean embeddings of a user's photos under each surrogate (no gradient)."""
    with torch.no_grad():
        return [s.embed(photos) for s in surrogates]


def farthest_identities(
    bank: IdentityBank, surrogates: list[Target], user: list[torch.Tensor], device: torch.device
) -> torch.Tensor:
    """Bank identities ordered from farthest to nearest to the user.

    Distance of a candidate = its smallest L2 distance to any of the user's photos, in the concatenated feature
    space of the surrogate ensemble (Fawkes' ``select_target_label``: the minimum over the user's photos, then
    sorted descending).
    """
    sq = None
    for s, feats in zip(surrogates, user, strict=True):
        d = torch.cdist(feats.to(device), bank.centroids(s, device)) ** 2  # photos x K
        sq = d if sq is None else sq + d
    nearest = sq.sqrt().min(0).values
    return torch.argsort(nearest, descending=True)


__all__ = ["BankSpec", "IdentityBank", "BankError", "load_bank", "bank_availability", "farthest_identities",
           "user_features"]
