"""What the training adversaries share: the owner's own people protected with the public method under test,
and a cache for what they train.

The recogniser's owner holds photos of people it already has (an identity bank the adversary declares in
``needs()``, read from ``context.run.identity_bank``: never an evaluated user). It runs the public tool on them exactly as a user would: a universal method is fitted on each of its
people's photos (with the method's own surrogates) and applied to them; a per-image method protects each photo.
The result is rounded to 8 bits, as a published photo is. Both the protected set and what is trained on it are
cached under ``context.cache_dir`` by a content key (method, its config, surrogates, the owner's people, and
whatever else the caller adds), so a rerun or another target reuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.api import AdversaryContext, Need, Target, from_uint8, save_torch, seeded, to_uint8

# The artifacts below are only ever read back by this code; keys also hold the code version of the method and
# adversary that made them. Bump when their layout changes.
CACHE_VERSION = "1"


@dataclass
class TrainingPairs:
    """Protected and clean canvases of the owner's people (N x 3 x 224 x 224 in [0, 1]) with identity indices."""

    protected: torch.Tensor
    clean: torch.Tensor
    owner: torch.Tensor
    identities: int
    seconds: float  # what protecting them took when they were made (also when read from the cache)
    cached: bool
    key: str  # names this set (method, config, surrogates, the owner's photos, seed) in later cache keys


def require_context(context: AdversaryContext | None, who: str) -> AdversaryContext:
    if context is None:
        raise ValueError(f"{who} trains on the recogniser owner's own people and needs the run's AdversaryContext "
                         "(adapt(target, context)); the runner supplies it, a script builds one with "
                         "bench.run.context.AdversaryContext")
    if context.cache_dir is None:
        raise ValueError(f"{who}: the AdversaryContext has no cache_dir to keep what it trains")
    return context


def trainable(target: Target) -> bool:
    """Whether the owner can backpropagate through ``target`` (a torch network, differentiable)."""
    return bool(target.differentiable) and isinstance(getattr(target, "network", None), torch.nn.Module)


def require_differentiable(target: Target, who: str) -> None:
    if not trainable(target):
        raise ValueError(f"{who} needs a differentiable target; {target.name} is a black box "
                         "(pick a torch target such as sface or mobileface)")


def cache_key(*parts: Any) -> str:
    blob = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def method_identity(context: AdversaryContext) -> dict[str, Any]:
    """What names the public method under test in a cache key: name, config, surrogates."""
    method = context.method
    return {"method": getattr(method, "name", type(method).__name__),
            "config": dataclasses.asdict(method.config) if dataclasses.is_dataclass(method.config) else str(method.config),
            "surrogates": [getattr(s, "name", type(s).__name__) for s in context.surrogates]}


def cache_path(context: AdversaryContext, folder: str, key: str) -> Path:
    path = Path(context.cache_dir) / folder / f"{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    save_torch(obj, path, "(an adversary's cache)")


def owner_people(identities: int, photos: int) -> Need:
    """The need of a training adversary: the owner's own people, as an identity bank of the run (people of its
    data root who are not evaluated users, aligned by the run's aligner)."""
    return Need("identity_bank", (identities, photos))


def select_public(context: AdversaryContext, identities: int, photos: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The owner's ``identities`` people with ``photos`` photos each: canvases, owner indices, and the digest of
    the selection (the bank's)."""
    bank = context.run.identity_bank(identities, photos)
    return bank.canvases, bank.owner, bank.digest


def protected_pairs(context: AdversaryContext, identities: int, photos: int, seed: int) -> TrainingPairs:
    """The owner's people, clean and protected by ``context.method`` (cached); the run shows it person by person."""
    canvases, owner, digest = select_public(context, identities, photos)
    key = cache_key("protected-public", method_identity(context), context.code_version(context.method), digest, seed)
    path = cache_path(context, "adversary-public", key)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        return TrainingPairs(from_uint8(saved["protected"]), from_uint8(saved["clean"]), saved["owner"],
                             int(saved["identities"]), float(saved["seconds"]), cached=True, key=key)
    device = torch.device(context.device)
    clean = to_uint8(canvases)
    protected = torch.empty_like(clean, device=device)  # kept on the device: one copy back at the end
    t0 = time.perf_counter()
    count = int(owner.max()) + 1
    label = f"the owner's people protected with {method_identity(context)['method']}"
    step = context.steps(label, count)
    for k in range(count):
        rows = (owner == k).nonzero().flatten()
        photos_k = from_uint8(clean[rows]).to(device)
        # as a protect task does: torch's global RNG seeded for this person only (torchattacks takes no generator)
        with seeded(seed + k, device):
            protector = context.method.fit(photos_k, list(context.surrogates), seed + k)
            protected[rows.to(device)] = to_uint8(protector.protect(photos_k).detach())
        step()
    seconds = time.perf_counter() - t0
    protected = protected.cpu()
    save_atomic({"protected": protected, "clean": clean, "owner": owner, "identities": count, "seconds": seconds},
                path)
    return TrainingPairs(from_uint8(protected), from_uint8(clean), owner, count, seconds, cached=False, key=key)
