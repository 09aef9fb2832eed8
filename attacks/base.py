"""Base class for adversaries: recognisers that fight the protection.

Three shapes behind one interface, all applied to one user's protected canvases at a time
(N x 3 x 224 x 224 RGB in [0, 1]):

- ``kind = "transform"``: an input transform on each photo (JPEG, denoising, resizing); ``apply`` only.
- ``kind = "estimation"``: uses all of a user's protected photos together (a universal mask is the same in
  every photo); ``apply`` sees the whole batch of the user.
- ``kind = "adaptation"``: changes the recogniser (fine-tuning on protected data); ``adapt`` returns the
  target the adversary will use.

``none`` is the oblivious adversary.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

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

    def adapt(self, target: Target) -> Target:
        """The recogniser the adversary uses (model adaptation overrides this)."""
        return target
