"""Shared base for differentiable targets converted from one ONNX file with onnx2torch (not a plug-in itself)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

import torch

from bench.api import WeightError, ensure
from targets.base import TorchTarget


def onnx2torch_status() -> tuple[bool, str | None]:
    """Whether onnx and onnx2torch are installed, found without importing them (onnx2torch pulls in torchvision's
    detection ops: seconds that `bench list targets` need not spend)."""
    missing = [m for m in ("onnx", "onnx2torch") if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"{' and '.join(missing)} not installed; pip install onnx onnx2torch"
    return True, None


def convert_onnx(path, name: str) -> torch.nn.Module:
    """Parse, check and convert an ONNX file; a file that is not a valid model gets a clear WeightError."""
    import onnx
    from onnx2torch import convert

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise WeightError(
            f"{path} is not a valid ONNX model for '{name}' ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); it may be truncated or another kind of file"
        ) from exc
    if len([i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]) != 1:
        raise WeightError(f"{path}: '{name}' needs a network with exactly one image input")
    return convert(model)


class OnnxFileTarget(TorchTarget):
    """A target whose network is its pinned ONNX file (``weights[0]``) converted once per load.

    Input: the framing's crop, RGB (or BGR), ``(x * 255 - mean) / std``.
    """

    bgr: ClassVar[bool] = False
    mean: ClassVar[float] = 127.5  # on 0..255 pixels
    std: ClassVar[float] = 127.5

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        return onnx2torch_status()

    def onnx_file(self) -> Path:
        """The file to convert: the verified original, or a file derived from it once."""
        return ensure(self.weights[0])

    def build_network(self) -> torch.nn.Module:
        return convert_onnx(self.onnx_file(), self.name)

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            crops = crops.flip(1)
        return (crops * 255.0 - self.mean) / self.std
