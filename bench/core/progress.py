"""Progress callbacks of a run; the CLI supplies a rich implementation, tests a silent one."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager


class Reporter:
    def live(self) -> AbstractContextManager:
        """What to hold while the work runs (a live display on a terminal; nothing for plain lines)."""
        return contextlib.nullcontext()

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, label: str = "") -> None: ...

    def message(self, text: str) -> None: ...

    def step(self, label: str, done: int, total: int) -> None:
        """Progress inside the task under way: ``done`` of ``total`` steps of ``label`` (a plug-in's training loop,
        which can take longer than many tasks together). Plug-ins report through ``RunContext.progress``."""


__all__ = ["Reporter"]
