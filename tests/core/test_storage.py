"""Files the harness and plug-ins write (converted weights, adversaries' caches, run artifacts) go through one safe
write: on a full disk the user reads one line naming the folder and the room the write needed, not PyTorch's
error from inside its serialiser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bench.core.storage import StorageError, save_torch


def temporary_of(path: Path) -> Path:
    """The name ``write_bytes`` writes ``path`` under before renaming it (this process's own)."""
    return path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")


def test_converting_lpips_weights_on_a_full_disk_ends_in_one_line(tmp_path):
    from bench.measures.lpips import ALEXNET_SPEC, _convert
    from bench.models.weights import WeightError, ensure

    try:
        src = ensure(ALEXNET_SPEC)
    except WeightError as exc:
        pytest.skip(f"LPIPS weights unavailable: {exc}")
    dst = tmp_path / "lpips_alex_v0.1.pt"
    temporary_of(dst).symlink_to("/dev/full")  # the kernel's always-full device: a real ENOSPC
    with pytest.raises(StorageError) as caught:
        _convert(src, dst)
    line = str(caught.value)
    assert line.startswith(f"no space left in {tmp_path} (LPIPS weights converted): the write needs ")
    assert "\n" not in line and not dst.exists()
    temporary_of(dst).unlink()
    _convert(src, dst)  # room again: the same call writes the whole file
    state = torch.load(dst, weights_only=True)
    assert state["lin0.model.1.weight"].shape == (1, 64, 1, 1)


def test_save_torch_returns_the_bytes_it_wrote(tmp_path):
    face = torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(3, 8, 8)
    data = save_torch({"face": face}, tmp_path / "a.pt")
    assert (tmp_path / "a.pt").read_bytes() == data
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["face"], face)
