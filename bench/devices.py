"""The torch device a command runs on: ``auto`` takes CUDA when it is there, else the CPU."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


def resolve_device(name: str | None) -> str:
    """``auto``/None -> "cuda" if available else "cpu"; an explicit CUDA device that is absent is an error."""
    if name in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device {name!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available here (use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return str(device)


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
