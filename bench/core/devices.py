"""The torch device a command runs on: ``auto`` takes CUDA when it is there, else the CPU."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from bench.core.validation import check_device


def resolve_device(name: str | None) -> str:
    """``auto``/None -> "cuda" if available else "cpu"; any other name is checked (``UsageError`` when the device
    is not a torch device or is absent here)."""
    if name in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(name)
    return str(torch.device(name))


def available_cores() -> int:
    """The CPU cores this process may use: its CPU affinity, lowered to a cgroup CPU quota when one is set
    (containers and batch jobs often allow fewer cores than the machine has)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def default_threads() -> int:
    """Torch intra-op threads for this machine: the cores this process may use, never more than torch's own
    choice (its count of physical cores, as hyper-threads slow convolutions down)."""
    return max(1, min(available_cores(), torch.get_num_threads()))
