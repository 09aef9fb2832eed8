"""Base class for adversaries: recognisers that fight the protection.

Three shapes behind one interface, all applied to one user's protected canvases at a time
(N x 3 x 224 x 224 RGB in [0, 1]):

- ``kind = "transform"``: an input transform on each photo (JPEG, denoising, resizing); ``apply`` only.
- ``kind = "estimation"``: uses all of a user's protected photos together (a universal mask is the same in
  every photo); ``apply`` sees the whole batch of the user.
- ``kind = "adaptation"``: changes the recogniser (fine-tuning); ``adapt(target, context)`` returns the
  target the adversary will use. ``context`` (``bench.context.AdversaryContext``) holds what it may train on:
  the owner's own people (never an evaluated user), the public method under test with its surrogates, a cache
  folder.

``none`` is the oblivious adversary.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from bench.context import AdversaryContext
from targets.base import Target


class Adversary:
    name: str = "adversary"
    kind: ClassVar[str] = "transform"
    Config: ClassVar[type]

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"kind": cls.kind}

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        """What the recogniser sees of one user's protected canvases."""
        return protected

    def adapt(self, target: Target, context: AdversaryContext) -> Target:
        """The recogniser the adversary uses (model adaptation overrides this)."""
        return target
