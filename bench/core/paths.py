"""Where cloakbench keeps its caches and finds data."""

from __future__ import annotations

import os
from pathlib import Path


def bench_home() -> Path:
    """Cache folder for weights, aligned canvases and calibrations: ``$BENCH_HOME`` or ``~/.cache/cloakbench``."""
    home = os.environ.get("BENCH_HOME")
    path = Path(home).expanduser() if home else Path.home() / ".cache" / "cloakbench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_data_root() -> Path:
    """The small LFW subset shipped inside the package (the out-of-the-box default)."""
    return Path(__file__).parents[1] / "embedded"
