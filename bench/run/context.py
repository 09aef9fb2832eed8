"""What a run hands its plug-ins, so that they never reach for run state themselves.

``RunContext`` is handed to methods (``Method.bind(context)``): the run's device, seed, data root, a cache
folder, and the identity bank (people who are not evaluated users, aligned once by the run's own aligner on the
run's device, ``bench.run.identity_bank``). A method declares what it takes from the context (``Method.needs()``,
a list of :class:`Need`); the harness resolves every declared need to a content digest before planning, the
digest enters the method's task keys, and a bound context refuses what was not declared. ``used`` records what
a task actually took (name -> digest), for its task record.

``AdversaryContext`` is what an adaptive adversary may use: a run context bound to the adversary's own
``needs()`` (the recogniser owner's own people are an identity bank: never an evaluated user), the public method
under test (configured, bound) with its surrogates, and a cache folder for what it trains. The digests of its
needs enter its evaluation keys; the method and its surrogates already do through the protect tasks' keys.

Outside a run (tests, notebooks) build a context from an explicit data root with
``bench.run.assembly.standalone_context``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class ContextError(RuntimeError):
    """What a plug-in asked of the run cannot be had (or was not declared); the message says why and what to do."""


@dataclass(frozen=True)
class Need:
    """One thing a plug-in takes from its context. ``what``: "identity_bank" (``args`` = (identities, photos)).

    A required need that the run cannot meet makes the plug-in ``unavailable`` with the reason; an optional one
    is still declared (its absence enters the key) and the plug-in handles the :class:`ContextError` itself.
    """

    what: str
    args: tuple = ()
    optional: bool = False

    @property
    def label(self) -> str:
        return self.what + ("/" + "x".join(str(a) for a in self.args) if self.args else "")


@dataclass
class IdentityBank:
    """People who are not evaluated users (``bench.run.identity_bank`` builds it): ``canvases`` K*P x 3 x 224 x 224 in
    [0, 1], identity-major, ``owner`` the identity index of each; ``digest`` names its content in task keys."""

    names: list[str]
    canvases: torch.Tensor
    owner: torch.Tensor
    source: str
    digest: str
    _centroids: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def photos_of(self, identity: int) -> torch.Tensor:
        return self.canvases[self.owner == identity]

    def centroids(self, surrogate: Any, device: torch.device | str) -> torch.Tensor:
        """K x D unit centroids of the bank identities under ``surrogate`` (computed once per surrogate)."""
        key = (getattr(surrogate, "name", type(surrogate).__name__), str(device))
        if key not in self._centroids:
            with torch.no_grad():
                emb = surrogate.embed(self.canvases.to(device))
            sums = torch.zeros(len(self.names), emb.shape[1], device=emb.device, dtype=emb.dtype)
            sums.index_add_(0, self.owner.to(emb.device), emb)
            self._centroids[key] = torch.nn.functional.normalize(sums, dim=1)
        return self._centroids[key].to(device)


NEED_KINDS = ("identity_bank",)


@dataclass
class RunContext:
    device: str = "cpu"
    seed: int = 0
    data_root: Path | None = None
    cache_dir: Path | None = None
    # (identities, photos per identity) -> an identity bank (``bench.run.identity_bank.IdentityBank``, with a
    # ``digest``); the harness supplies it, aligned on its device. It raises ContextError when it cannot.
    bank_provider: Callable[[int, int], Any] | None = None
    # name -> content digest of everything a task took from the context (for its task record)
    used: dict[str, str] = field(default_factory=dict)
    # the needs the plug-in holding this context declared; None: a harness-side context that grants everything
    granted: frozenset[Need] | None = None
    # where progress inside a task goes (the run's ``Reporter.step``); None: nobody is watching
    on_progress: Callable[[str, int, int], None] | None = None

    def progress(self, label: str, done: int, total: int) -> None:
        """Report ``done`` of ``total`` steps of ``label``, for work that holds one task for minutes (a training
        loop): call it with 0 before the first step and after each; the run shows it under the task with an ETA."""
        if self.on_progress is not None:
            self.on_progress(label, done, total)

    def steps(self, label: str, total: int) -> Callable[[], None]:
        """``progress`` for a loop of ``total`` steps: reports 0 now and returns ``step()``, to call after each."""
        done = 0
        self.progress(label, 0, total)

        def step() -> None:
            nonlocal done
            done += 1
            self.progress(label, done, total)

        return step

    def for_plugin(self, needs: list[Need] | tuple[Need, ...], seed: int | None = None) -> RunContext:
        """A copy for one plug-in: it grants exactly the declared ``needs`` and starts a fresh ``used``."""
        unknown = sorted({n.what for n in needs} - set(NEED_KINDS))
        if unknown:
            raise ContextError(f"unknown need(s) {unknown}; a run context provides {', '.join(NEED_KINDS)}")
        return dataclasses.replace(self, granted=frozenset(needs), used={},
                                   seed=self.seed if seed is None else seed)

    def _check_granted(self, what: str, args: tuple) -> None:
        if self.granted is None:
            return
        if not any(n.what == what and n.args == args for n in self.granted):
            declared = ", ".join(sorted(n.label for n in self.granted)) or "nothing"
            raise ContextError(f"{what}{list(args)} was not declared by this plug-in (it declared {declared}): "
                               "list it in needs() so that it enters the task key")

    def identity_bank(self, identities: int, photos: int) -> IdentityBank:
        self._check_granted("identity_bank", (identities, photos))
        if self.bank_provider is None:
            raise ContextError("this run context has no identity bank: `bench run` supplies one; outside a run use "
                               "bench.run.assembly.standalone_context(data_root=...)")
        bank = self.bank_provider(identities, photos)
        self.used[Need("identity_bank", (identities, photos)).label] = bank.digest
        return bank

    def digest(self, need: Need) -> str:
        """The content digest of what ``need`` gives (the harness calls this before planning)."""
        if need.what == "identity_bank":
            return self.identity_bank(*need.args).digest
        raise ContextError(f"unknown need {need.what!r}; a run context provides {', '.join(NEED_KINDS)}")


@dataclass
class AdversaryContext:
    run: RunContext  # bound to the adversary's needs(): its identity bank is the owner's own people
    method: Any = None  # the public protection method under test (configured), or None for clean photos
    surrogates: list[Any] = field(default_factory=list)

    @property
    def device(self) -> str:
        return self.run.device

    @property
    def cache_dir(self) -> Path | None:
        return self.run.cache_dir

    def progress(self, label: str, done: int, total: int) -> None:
        """As ``RunContext.progress``: what the adversary trains shows its steps under the task under way."""
        self.run.progress(label, done, total)

    def steps(self, label: str, total: int) -> Callable[[], None]:
        """As ``RunContext.steps``."""
        return self.run.steps(label, total)

    @staticmethod
    def code_version(obj: Any) -> str:
        """The code version the run keys ``obj``'s work by (``bench.run.provenance.code_version``): what an adversary
        trains is cached under it."""
        from bench.run.provenance import code_version

        return code_version(obj)


__all__ = ["RunContext", "AdversaryContext", "Need", "ContextError", "IdentityBank"]
