"""Base classes for protection methods.

A method is fitted once per user: ``fit(photos, surrogates, seed) -> Protector``; ``Protector.protect(canvases)``
returns protected canvases. Canvases are N x 3 x 224 x 224 RGB floats in [0, 1] (``bench.data.canvas``).

- ``kind = "universal"``: one mask per user (Chameleon P3-Mask, OPOM, FaceCloak, UAP), learned on the user's fit
  photos and applied instantly to photos it never saw. The mask is a key: ``deobfuscate`` removes it.
- ``kind = "per-image"``: optimises every photo inside ``protect`` (Fawkes, LowKey, TIP-IM, PGD).

Budgets: ``linf`` (max |x' - x| on the 0..1 scale), ``dssim`` ((1 - SSIM) / 2 on the canvas face box,
``bench.data.canvas.face_region``), ``l2`` (per-photo L2 norm of x' - x) and/or ``area`` (the share of canvas pixels a
region patch may change, colours unbounded there); ``Method.budget()`` declares them and the harness checks every
declared bound on every protected photo (``bench.run.budget``): a method that exceeds one fails its task. A method with
no bound at all (an obfuscation, an L2-minimising attack) says what limits its change in ``note``. Surrogates are
targets chosen by the suite (never the evaluated target unless the suite says white-box).

Run state comes from the run: the harness calls ``bind(context)`` before ``fit``, and a method takes from
``self.context`` (``bench.run.context.RunContext``) only what its ``needs()`` declare (e.g. the identity bank), so
that it enters the task key. A method used outside a run is bound by hand to
``bench.run.assembly.standalone_context(data_root=...)`` (``bench protect`` does).

A loop that can hold a task for minutes (a fit's iterations, a per-image protector's batches x steps) reports its
steps: ``step = self.progress("fit", total)`` before it, ``step()`` after each; a per-image protector gets the
method's ``progress`` when it is made (``no_progress`` when nothing watches).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from bench.api import ContextError, Need, RunContext, Target


@dataclass
class Budget:
    linf: float | None = None  # on the 0..1 scale
    dssim: float | None = None  # (1 - SSIM) / 2 upper bound, on the canvas face box
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

    def bounds(self) -> dict[str, float]:
        """The numeric bounds the harness checks on every photo (``bench.run.budget.check_budget``); ``note`` is text."""
        return {k: v for k, v in self.as_dict().items() if k != "note"}


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


@dataclass(frozen=True)
class Reported:
    """A number the paper reports on data this project has (LFW), shown beside the measured one (RobustBench's
    ``reported``). ``metric`` is a result-row name (e.g. "psr_top1"), ``value`` a fraction in [0, 1]."""

    metric: str
    value: float
    target: str  # the recogniser the paper judged with, in the paper's words
    setting: str  # surrogate, budget, protocol: what must match for the numbers to compare
    source: str  # where the number is printed (paper table, repository log)


# Called after each step of a long loop; ``Progress(label, total)`` makes one (``Method.progress``).
Step = Callable[[], None]
Progress = Callable[[str, int], Step]


def batch_steps(photos: int, batch_size: int, steps: int = 1) -> int:
    """The steps of a protector that runs ``steps`` iterations on each batch of ``batch_size`` of ``photos``."""
    return -(-photos // batch_size) * steps


def no_progress(label: str, total: int) -> Step:
    """The progress of a fit or protector no run watches: its steps go nowhere."""
    return lambda: None


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
    reported: ClassVar[tuple[Reported, ...]] = ()
    # The config field the optimisation's work grows with linearly (steps, epochs, iterations), or None: cost
    # estimates (`bench perf`, `bench run --dry-run`) time the method at a few values of it and scale.
    effort: ClassVar[str | None] = None
    _context: RunContext | None = None

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def needs(self) -> list[Need]:
        """What ``fit``/``protect`` take from the run context (resolved and keyed by the harness)."""
        return []

    def bind(self, context: RunContext, seed: int | None = None) -> Method:
        """A copy of the method bound to ``context`` (granting exactly what ``needs()`` declares); the method
        itself stays unbound, so one configured instance serves every task."""
        bound = copy.copy(self)
        bound._context = context.for_plugin(self.needs(), seed)
        return bound

    @property
    def context(self) -> RunContext:
        if self._context is None:
            raise ContextError(f"{self.name} is not bound to a run context: `bench run` binds it; outside a run call "
                               f"method.bind(bench.run.assembly.standalone_context(data_root=...)) first")
        return self._context

    @property
    def holds_key(self) -> bool:
        """Whether its protectors hold a key the owner can remove (``Protector.deobfuscate``): universal masks do.
        The harness measures key-holder accuracy for these."""
        return self.kind == "universal"

    @classmethod
    def describe(cls, **preset: Any) -> dict[str, Any]:
        """For ``bench list``; budget and goal are read from the preset's instance, so they cannot drift."""
        method = cls(cls.Config(**preset))
        return {"kind": cls.kind, "paper": cls.paper, "budget": method.budget().text(), "goal": method.goal,
                "reference": cls.reference or cls.paper, "deviations": list(cls.deviations),
                "reported": [asdict(r) for r in cls.reported]}

    def budget(self) -> Budget:
        eps = getattr(self.config, "epsilon", None)
        return Budget(linf=eps)

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        raise NotImplementedError

    def progress(self, label: str, total: int) -> Step:
        """A ``step()`` to call after each of ``total`` steps of ``label`` (a fit's iterations, a protector's batches
        x steps): a run shows them under the task under way, with an ETA; unbound, they go nowhere."""
        context = self._context
        return no_progress(label, total) if context is None else context.steps(f"{self.name} {label}", total)


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


@contextmanager
def seeded(seed: int, device: torch.device | str) -> Iterator[None]:
    """Run with torch's global RNG seeded, restoring the caller's RNG state after: for libraries that draw from
    it and take no generator (torchattacks). Methods' own draws go through :func:`seeded_generator`."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        yield
