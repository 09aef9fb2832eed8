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

    def next_pace(self, total: int, start: float) -> Pace:
        """The ``Pace`` of a phase of ``total`` items starting at ``start``, with what ``expect`` said of them
        (once)."""
        pace, self.costs = Pace(total, self.costs, start), None
        return pace

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, label: str = "") -> None: ...

    def message(self, text: str) -> None: ...

    def step(self, label: str, done: int, total: int) -> None:
        """Progress inside the task under way: ``done`` of ``total`` steps of ``label`` (a plug-in's training loop,
        which can take longer than many tasks together). Plug-ins report through ``RunContext.progress``."""


class Pace:
    """The ETA of ``total`` items that differ in cost: each weighs its expected cost (``costs`` by label; one it
    lacks, their mean; all alike without costs), and what is left goes at the pace of the items done (seconds per
    unit of cost from ``start`` to the last one done), which a busy machine slows for every item alike.

    Times are readings of one clock, whichever the caller keeps (``time.monotonic`` for a live display, the run
    store's ``time.time`` for ``bench status``). The time since the last item finished went into what is left, so
    it counts against the ETA, down to what would still be left once the costliest item to go were done (the one
    under way, at worst); the pace itself is measured on finished items only, so a long item under way neither
    inflates the ETA (elapsed time over a few cheap items done) nor ends it at zero."""

    def __init__(self, total: int, costs: Mapping[str, float] | None = None, start: float = 0.0):
        self.costs = {label: max(LEAST_COST, c) for label, c in (costs or {}).items()}
        self.mean = sum(self.costs.values()) / len(self.costs) if self.costs else 1.0
        self.unpriced = max(0, total - len(self.costs))  # items to go that weigh the mean
        self.left = sum(self.costs.values()) + self.unpriced * self.mean
        self.done = 0.0
        self.start = self.last = start

    def advance(self, label: str, at: float) -> None:
        """The item ``label`` finished at time ``at``."""
        if label in self.costs:
            cost = self.costs.pop(label)
        else:
            cost, self.unpriced = self.mean, max(0, self.unpriced - 1)
        self.done += cost
        self.left = max(0.0, self.left - cost)
        self.last = max(self.last, at)

    def eta(self, now: float) -> float | None:
        """Seconds left at time ``now`` (None before the first item is done)."""
        if not self.done:
            return None
        rate = (self.last - self.start) / self.done
        costliest = max(max(self.costs.values(), default=0.0), self.mean if self.unpriced else 0.0)
        return max(rate * self.left - max(0.0, now - self.last), rate * max(0.0, self.left - costliest))


__all__ = ["Reporter", "Pace", "LEAST_COST"]
