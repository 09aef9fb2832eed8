"""Progress callbacks of a run; the CLI supplies a rich implementation, tests a silent one."""

from __future__ import annotations


class Reporter:
    def phase(self, name: str, total: int) -> None: ...

    def advance(self, label: str = "") -> None: ...

    def message(self, text: str) -> None: ...


__all__ = ["Reporter"]
