"""The torch device a command runs on: ``auto`` takes CUDA when it is there, else the CPU."""

from __future__ import annotations

import torch

from bench.validate import check_device


def resolve_device(name: str | None) -> str:
    """``auto``/None -> "cuda" if available else "cpu"; any other name is checked (``UsageError`` when the device
    is not a torch device or is absent here)."""
    if name in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(name)
    return str(torch.device(name))
