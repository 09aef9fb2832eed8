"""Base class for adversaries: recognisers that fight the protection.

Three shapes behind one interface, all applied to one user's protected canvases at a time
(N x 3 x 224 x 224 RGB in [0, 1], the published 8-bit photos):

- ``kind = "transform"``: an input transform on each photo (JPEG, denoising, resizing); ``apply`` only.
- ``kind = "estimation"``: uses all of a user's protected photos together (a universal mask is the same in
  every photo); ``apply`` sees the whole batch of the user.
- ``kind = "adaptation"``: changes the recogniser with what the owner can train on its own people
  (``bench.run.context.AdversaryContext``); ``adapt(target, context)`` returns the recogniser the adversary uses,
  and ``info()`` says what the adaptation cost.

``none`` is the oblivious adversary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from bench.api import AdversaryContext, Need, Target, to_uint8

KINDS = ("transform", "estimation", "adaptation")


class Adversary:
    name: str = "adversary"
    kind: ClassVar[str] = "transform"
    Config: ClassVar[type]
    # Core requirements the harness leaves to plug-ins (bench.run.bundle.PLUGIN_PACKAGES) that this adversary
    # imports to run: a run-only `bench bundle` carries them only for the adversaries it is made for.
    run_packages: ClassVar[tuple[str, ...]] = ()
    # A tracker that grows its gallery with what it recognises (attacks.dynamic_gallery): the evaluation hands it
    # the gallery and the posted photos' embeddings (``enrol``) and scores the photos against the grown gallery.
    grows_gallery: ClassVar[bool] = False
    # What it trains serves every target of a run (a purifier) or is trained per target (a fine-tuned model).
    trains_per_target: ClassVar[bool] = False

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"kind": cls.kind}

    def apply(self, protected: torch.Tensor) -> torch.Tensor:
        """What the recogniser sees of one user's protected canvases."""
        return protected

    def needs(self) -> list[Need]:
        """What ``adapt`` takes from the run context (an identity bank: the owner's own people), resolved and
        keyed by the harness like a method's."""
        return []

    def adapt(self, target: Target, context: AdversaryContext | None = None) -> Target:
        """The recogniser the adversary uses (model adaptation overrides this)."""
        return target

    def training_step(self, target: Target, photos: torch.Tensor) -> tuple[Callable[[], Any], int] | None:
        """For the dry run (``bench.perf.estimate``): one step of the training ``adapt`` runs, on ``photos`` standing in
        for the owner's (their shape is what counts), and how many such steps the configured training takes;
        None when the adversary trains nothing."""
        return None

    def info(self) -> dict[str, Any]:
        """Facts about the last adaptation (seconds it took, whether it came from the cache); JSON-serialisable."""
        return {}


def check_range(name: str, value: float | None, low: float, high: float, *, open_low: bool = False) -> None:
    """Raise ValueError naming ``value`` and the allowed range unless low <= value <= high (low < value if
    ``open_low``)."""
    ok = value is not None and (low < value if open_low else low <= value) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")


def skimage_restoration(adversary: str):
    """scikit-image's ``restoration`` module, imported when a denoiser first runs (a run-only `bench bundle` made
    for suites without these adversaries leaves scikit-image out)."""
    try:
        from skimage import restoration
    except ImportError as exc:
        raise ImportError(f"the '{adversary}' adversary needs scikit-image ({exc}): pip install 'scikit-image>=0.22' "
                          "(or make the bundle for a suite that has this adversary)") from exc
    return restoration


def per_photo(canvases: torch.Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Run ``fn`` on each canvas as the 8-bit H x W x 3 RGB array a published photo is.

    ``fn`` returns uint8 (an 8-bit tool: the result is what an 8-bit file holds) or floats in [0, 1] (a float
    tool such as scikit-image's denoisers: the recogniser gets its output unrounded).
    """
    arrays = to_uint8(canvases).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for arr in arrays:
        res = np.asarray(fn(np.ascontiguousarray(arr)))
        if res.shape != arr.shape:
            raise ValueError(f"a transform changed the canvas shape from {arr.shape} to {res.shape}")
        out.append(res.astype(np.float32) / 255.0 if res.dtype == np.uint8 else np.clip(res, 0, 1).astype(np.float32))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(canvases.device)
