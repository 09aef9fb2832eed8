"""How targeted methods pick among the run's identity bank (``bench.run.identity_bank``, via the run context).

Shapes: user features are one N x D matrix per surrogate; bank centroids K x D unit vectors per surrogate.
"""

from __future__ import annotations

import torch

from bench.api import IdentityBank, Target


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


__all__ = ["farthest_identities", "user_features"]
