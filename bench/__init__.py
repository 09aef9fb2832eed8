"""cloakbench: benchmark face privacy-protection masks against face recognition.

The Python API (docs/python-api.md)::

    import bench
    method = bench.load_method("pgd", steps=5)        # a registered method, config fields overridden
    sface = bench.load_target("sface")                # a recogniser, weights verified and loaded
    face = bench.align("photo.jpg")                   # detected and aligned onto the benchmark's canvas
    protected = bench.protect(method, [face], [sface])
    df = bench.load_results("results/")               # a leaderboard as a tidy pandas DataFrame
    df = bench.evaluate("smoke", out="runs/mine")     # run a suite, get its results

Importing the package loads nothing heavy: each function imports what it needs when called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {"load_method", "load_target", "align", "protect", "evaluate", "load_results", "faces_tensor"}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("bench.library"), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
