"""What a run hands its plug-ins, so that they never reach for run state themselves.

``RunContext`` is handed to methods (``Method.bind(context)``) and targets: the run's device, seed, data root, a
cache folder, and the identity bank (people who are not evaluated users, aligned once by the run's own aligner
on the run's device). ``AdversaryContext`` is what an adaptive adversary may use: its own identities and photos
(never the evaluated users'), the public method under test with its surrogates, and a cache folder for what it
trains. Whatever a plug-in uses from a context is part of its task's key (``used`` lists it, with digests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class RunContext:
    device: str = "cpu"
    seed: int = 0
    data_root: Path | None = None
    cache_dir: Path | None = None
    # (identities, photos per identity) -> an identity bank; the harness supplies it, aligned on its device.
    bank_provider: Callable[[int, int], Any] | None = None
    # name -> content digest of everything taken from the context (enters the task key)
    used: dict[str, str] = field(default_factory=dict)

    def identity_bank(self, identities: int, photos: int) -> Any:
        if self.bank_provider is None:
            raise RuntimeError("this run context has no identity bank: the run supplies one (bench.run); "
                               "outside a run, build a context with bench.context.RunContext(bank_provider=...)")
        bank = self.bank_provider(identities, photos)
        self.used[f"identity_bank/{identities}x{photos}"] = getattr(bank, "digest", "")
        return bank


@dataclass
class PublicPhotos:
    """The recogniser owner's own people: never an evaluated user. ``canvases`` N x 3 x 224 x 224 in [0, 1]."""

    canvases: torch.Tensor
    labels: list[str]
    digest: str


@dataclass
class AdversaryContext:
    run: RunContext
    public: Callable[[], PublicPhotos]  # built lazily: transforms never pay for it
    method: Any = None  # the public protection method under test (configured), or None for clean photos
    surrogates: list[Any] = field(default_factory=list)

    @property
    def device(self) -> str:
        return self.run.device

    @property
    def cache_dir(self) -> Path | None:
        return self.run.cache_dir
