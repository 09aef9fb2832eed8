"""Progress callbacks of a run; the CLI supplies a rich implementation, tests a silent one. ``Pace`` is the ETA both
displays share."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager

# An item priced at nothing still moves the pace (a dry run prices some evaluations at 0 s).
LEAST_COST = 1e-3


class Reporter:
    costs: Mapping[str, float] | None = None  # what ``expect`` said of the next phase, until it starts

    def live(self) -> AbstractContextManager:
        """What to hold while the work runs (a live display on a terminal; nothing for plain lines)."""
        return contextlib.nullcontext()

    def expect(self, costs: Mapping[str, float]) -> None:
        """The expected cost of the items of the next phase, by label (a run's tasks priced from a dry run's rates,
        ``bench.perf.estimate``), for its ETA; without it every item counts alike."""
        self.costs = costs

    def next_pace(self, total: int) -> Pace:
        """The ``Pace`` of a phase of ``total`` items starting now, with what ``expect`` said of them (once)."""
        pace, self.costs = Pace(total, self.costs), None
        return pace

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, label: str = "") -> None: ...

    def message(self, text: str) -> None: ...

    def step(self, label: str, done: int, total: int) -> None:
        """Progress inside the task under way: ``done`` of ``total`` steps of ``label`` (a plug-in's training loop,
        which can take longer than many tasks together). Plug-ins report through ``RunContext.progress``."""


class Pace:
    """The ETA of ``total`` items that differ in cost: each weighs its expected cost (``costs`` by label; one it
    lacks, their mean; all alike without costs), and what is left goes at the pace measured so far (seconds per
    unit of cost done), which a busy machine slows for every item alike."""

    def __init__(self, total: int, costs: Mapping[str, float] | None = None):
        self.costs = {label: max(LEAST_COST, c) for label, c in (costs or {}).items()}
        self.mean = sum(self.costs.values()) / len(self.costs) if self.costs else 1.0
        self.left = sum(self.costs.values()) + max(0, total - len(self.costs)) * self.mean
        self.done = 0.0

    def advance(self, label: str = "") -> None:
        cost = self.costs.pop(label, self.mean)
        self.done += cost
        self.left = max(0.0, self.left - cost)

    def eta(self, elapsed: float) -> float | None:
        """Seconds left (None before the first item is done)."""
        return elapsed / self.done * self.left if self.done else None


__all__ = ["Reporter", "Pace", "LEAST_COST"]
