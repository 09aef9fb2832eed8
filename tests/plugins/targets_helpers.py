"""Helpers shared by the target test files."""

from __future__ import annotations

import pytest

from bench.registry import TARGETS


def load_or_skip(name: str):
    """The target, loaded; skipped (with the reason) where its weights cannot be had here."""
    ok, reason = TARGETS.entry(name).availability()
    if not ok and "not fetched" not in (reason or ""):
        pytest.skip(reason)
    target = TARGETS.create(name)
    try:
        target.load()
    except Exception as exc:  # no npm / no registry: the weights cannot be had here
        pytest.skip(f"{name} weights unavailable: {exc}")
    return target
