"""Where a result comes from: content keys of tasks, code versions of plug-ins, the run's environment.

A task's key hashes everything its result depends on (inputs, configs, code versions); a rerun skips every key
already recorded as done, and a change re-keys only the tasks it touches.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import bench


def content_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def code_version(obj: Any) -> str:
    """Hash of the source file defining ``obj``'s class (plus the package version): code changes re-key tasks."""
    cls = obj if isinstance(obj, type) else type(obj)
    h = hashlib.sha256(bench.__version__.encode())
    for klass in cls.__mro__:
        try:
            src = inspect.getsourcefile(klass)
        except TypeError:
            continue
        if src and "site-packages" not in src and os.path.exists(src):
            h.update(Path(src).read_bytes())
    return h.hexdigest()[:12]


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str, threads: int) -> dict[str, Any]:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cloakbench": bench.__version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": device,
        "cuda_device": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
        "threads": threads,
    }


def record_invocation(store, env: dict[str, Any]) -> None:
    """A resumed run mixes tasks from several invocations: keep each one's time, code revision and device."""
    history = store.get_meta("invocations", [])
    store.set_meta("invocations", [*history, {k: env.get(k) for k in ("created", "git_revision", "device")}])


__all__ = ["content_key", "code_version", "git_revision", "environment", "record_invocation"]
