"""Console shared by the commands: tables stay readable when output is piped (rich assumes 80 columns)."""

from __future__ import annotations

from rich.console import Console


def wide_console() -> Console:
    return Console(width=max(140, Console().width))
