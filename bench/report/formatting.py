"""How numbers are written in every view (Markdown, HTML report, terminal tables): one place, one rule each.

A missing value (None, NaN, infinity, or anything that is not a number) is written ``na`` ("n/a" by default).
"""

from __future__ import annotations

import math
from typing import Any

from bench.measures.registry import SIGNIFICANT

NA = "n/a"


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def number(value: Any, spec: str, na: str = NA) -> str:
    """``format(value, spec)``; an integer spec ("d") rounds a float first; ``SIGNIFICANT``: three significant
    digits (0.237, 2.88, 1494)."""
    v = finite(value)
    if v is None:
        return na
    if spec == SIGNIFICANT:
        return f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f}" if v else "0"
    return format(round(v), spec) if spec.endswith("d") else format(v, spec)


def percent(value: Any, digits: int = 1, suffix: str = "", na: str = NA) -> str:
    """A fraction in [0, 1] as a percentage: 0.3 -> "30.0" (+ ``suffix``, e.g. "%")."""
    v = finite(value)
    return na if v is None else f"{100 * v:.{digits}f}{suffix}"


# why a target x adversary cell has no number: its task failed, or has not run yet (a run under way)
CELL_STATUSES = ("failed", "pending")


def cell_status(cell: dict[str, Any]) -> str | None:
    """"failed" or "pending" for a cell without a number (``CELL_STATUSES``), else None."""
    status = cell.get("status")
    return status if status in CELL_STATUSES else None


def with_interval(value: Any, interval: Any) -> str:
    """A fraction and its 95% interval as percentages: "30.0 [12.5, 47.5]" (the interval left out when missing)."""
    return percent(value) + (f" [{percent(interval[0])}, {percent(interval[1])}]" if interval else "")


def signed(value: Any, spec: str) -> str:
    """A difference with its sign ("+0.0125"); empty when there is none."""
    v = finite(value)
    return "" if v is None else format(v, "+" + spec)


def finer(spec: str) -> str:
    """One more decimal than ``spec`` (".3f" -> ".4f"), to show a change smaller than the display precision."""
    if spec.startswith(".") and spec.endswith("f") and spec[1:-1].isdigit():
        return f".{int(spec[1:-1]) + 1}f"
    return spec
