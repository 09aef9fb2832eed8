"""Base classes for protection methods.

A method is fitted once per user: ``fit(photos, surrogates, seed) -> Protector``; ``Protector.protect(canvases)``
returns protected canvases. Canvases are N x 3 x 224 x 224 RGB floats in [0, 1] (``bench.canvas``).

- ``kind = "universal"``: one mask per user (Chameleon P3-Mask, OPOM, FaceCloak, UAP), learned on the user's fit
  photos and applied instantly to photos it never saw. The mask is a key: ``deobfuscate`` removes it.
- ``kind = "per-image"``: optimises every photo inside ``protect`` (Fawkes, LowKey, TIP-IM, PGD).

Budgets: ``linf`` (max |x' - x| on the 0..1 scale), ``dssim``, ``l2`` (per-photo L2 norm of x' - x) or ``area``
(the share of canvas pixels a region patch may change, colours unbounded there); ``Method.budget()`` declares it
and the harness checks the norm bounds on every protected photo (``Budget.violation``). A method with no bound
at all (an obfuscation, an L2-minimising attack) says so in ``note``. Surrogates are targets chosen by the suite (never the evaluated
target unless the suite says white-box).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from targets.base import Target


@dataclass
class Budget:
    linf: float | None = None  # on the 0..1 scale
    dssim: float | None = None  # (1 - SSIM) / 2 upper bound
    l2: float | None = None  # per-photo L2 norm of x' - x over the whole canvas, on the 0..1 scale
    area: float | None = None  # largest share of canvas pixels that may change (region patches)
    note: str | None = None  # what bounds the change when no norm does (e.g. "blur sigma 3 px, unbounded")

    def as_dict(self) -> dict[str, float | str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def text(self) -> str:
        """E.g. "linf 16/255" (in 1/255 steps when the value is one) or "dssim 0.007, linf 15/255"."""
        parts = []
        if self.dssim is not None:
            parts.append(f"dssim {self.dssim:g}")
        if self.linf is not None:
            steps = self.linf * 255
            exact = abs(steps - round(steps)) < 1e-6
            parts.append(f"linf {round(steps)}/255" if exact else f"linf {self.linf:g}")
        if self.l2 is not None:
            parts.append(f"l2 {self.l2:g}")
        if self.area is not None:
            parts.append(f"area {100 * self.area:.1f}% of the canvas")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts) or "none declared"

    def violation(self, protected: torch.Tensor, clean: torch.Tensor) -> str | None:
        """What exceeds the declared L-inf, L2 or area bound on these photos, or None (DSSIM is the method's own
        check). Tolerances absorb float rounding only."""
        if not len(clean):
            return None
        diff = (protected - clean).flatten(1)
        if self.linf is not None and (worst := float(diff.abs().max())) > self.linf + 1e-5:
            return f"L-inf {worst:.5f} > {self.linf:.5f}"
        if self.l2 is not None and (worst := float(diff.norm(dim=1).max())) > self.l2 * (1 + 1e-4) + 1e-5:
            return f"L2 {worst:.4f} > {self.l2:.4f}"
        if self.area is not None:
            changed = ((protected - clean).abs() > 1e-6).any(1).flatten(1).float().mean(1)
            if (worst := float(changed.max())) > self.area + 1e-6:
                return f"changed {100 * worst:.2f}% of the canvas > area {100 * self.area:.2f}%"
        return None


class Protector:
    """Protects canvases for one user. Subclasses hold a mask (universal) or optimise per photo."""

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def deobfuscate(self, canvases: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} holds no key: its protection cannot be removed")

    @property
    def has_key(self) -> bool:
        return False

    def info(self) -> dict[str, Any]:
        """Facts for the results (selected surrogates, losses ...); JSON-serialisable."""
        return {}

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors to save as the fitted artifact (e.g. the mask)."""
        return {}


class MaskProtector(Protector):
    """An additive mask on the canvas: x' = clip(x + mask, 0, 1); the key holder subtracts it.

    De-obfuscation is exact where clipping did not bite and close elsewhere.
    """

    def __init__(self, mask: torch.Tensor, info: dict[str, Any] | None = None):
        self.mask = mask.detach()
        self._info = info or {}

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        return (canvases + self.mask.to(canvases.device)).clamp(0, 1)

    def deobfuscate(self, canvases: torch.Tensor) -> torch.Tensor:
        return (canvases - self.mask.to(canvases.device)).clamp(0, 1)

    @property
    def has_key(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def state(self) -> dict[str, torch.Tensor]:
        return {"mask": self.mask.cpu()}


GOALS = ("dodging", "impersonation")


class Method:
    name: str = "method"
    kind: ClassVar[str] = "universal"  # "universal" | "per-image"
    Config: ClassVar[type]
    paper: ClassVar[str] = ""
    # The authors' code this implementation follows (a repository), or the paper when there is none.
    reference: ClassVar[str] = ""
    # What still differs from ``reference``, in words a user reads in `bench list methods --json`; a stand-in
    # for something the reference has (a generator, a data set) says so here.
    deviations: ClassVar[tuple[str, ...]] = ()
    # "dodging": the user is not recognised as themself; "impersonation": recognised as a chosen other identity.
    # A class whose presets differ in goal reads it from its config (a property).
    goal: ClassVar[str] = "dodging"

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def describe(cls, **preset: Any) -> dict[str, Any]:
        """For ``bench list``; budget and goal are read from the preset's instance, so they cannot drift."""
        method = cls(cls.Config(**preset))
        return {"kind": cls.kind, "paper": cls.paper, "budget": method.budget().text(), "goal": method.goal,
                "reference": cls.reference or cls.paper, "deviations": list(cls.deviations)}

    def budget(self) -> Budget:
        eps = getattr(self.config, "epsilon", None)
        return Budget(linf=eps)

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        raise NotImplementedError


def embed_all(surrogates: list[Target], canvases: torch.Tensor) -> list[torch.Tensor]:
    """Embeddings of canvases under each surrogate."""
    return [s.embed(canvases) for s in surrogates]


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
