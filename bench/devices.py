"""The torch device a command runs on: ``auto`` takes CUDA when it is there, else the CPU."""

from __future__ import annotations

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
