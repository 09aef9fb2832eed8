"""Shared pieces of the universal (one mask per user) methods: Chameleon, OPOM, FaceCloak, UAP.

Not a plug-in (the leading underscore keeps the registry from importing it as one). A universal mask is a
1 x 3 x S x S tensor on the canvas; ``region`` restricts it to the ArcFace face box (``bench.data.canvas.FACE_BOX``,
the canvas pixels of the 112 x 112 crop the papers optimise on) or lets it cover the whole canvas.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from bench.api import FACE_BOX, Target

REGIONS = ("face-box", "canvas")


def check_region(region: str) -> None:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")


def check_photos(photos: torch.Tensor, method: str) -> None:
    if photos.ndim != 4 or photos.shape[1] != 3 or photos.shape[-1] != photos.shape[-2]:
        raise ValueError(
            f"{method}: photos must be N x 3 x S x S canvases in [0, 1], got {tuple(photos.shape)}"
        )
    if len(photos) == 0:
        raise ValueError(f"{method}: needs at least one fit photo of the user, got none")


def check_surrogates(surrogates: list[Target], method: str) -> None:
    if not surrogates:
        raise ValueError(f"{method} needs at least one differentiable surrogate target; got none")
    blind = [getattr(s, "name", type(s).__name__) for s in surrogates if not s.differentiable]
    if blind:
        raise ValueError(f"{method} needs differentiable surrogates (gradients to the pixels); not: {blind}")


def region_support(photos: torch.Tensor, region: str) -> torch.Tensor:
    """1 x 1 x S x S map: 1 where the mask may be non-zero, 0 elsewhere."""
    check_region(region)
    size = photos.shape[-1]
    support = torch.zeros(1, 1, size, size, dtype=photos.dtype, device=photos.device)
    if region == "canvas":
        return support + 1
    a, b = (round(v * size / 224) for v in FACE_BOX)
    support[..., a:b, a:b] = 1
    return support


def uniform_start(
    photos: torch.Tensor, radius: float, support: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """A 1 x 3 x S x S mask uniform in +-radius on the support (the cosine/arccos losses are flat at zero)."""
    shape = (1, *photos.shape[1:])
    noise = torch.rand(shape, generator=gen, device=photos.device, dtype=photos.dtype) * 2 - 1
    return noise * radius * support


def project(mask: torch.Tensor, epsilon: float | torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Back into the L-inf ball (a scalar or a per-pixel bound) and onto the support."""
    bound = epsilon if torch.is_tensor(epsilon) else torch.full_like(mask, epsilon)
    return mask.clamp(-bound, bound) * support


def apply_mask(photos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (photos + mask).clamp(0, 1)


def clean_embeddings(surrogates: list[Target], photos: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return [s.embed(photos).detach() for s in surrogates]


def minibatches(
    n: int, batch_size: int, gen: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches (the last one may be smaller)."""
    order = torch.randperm(n, generator=gen, device=device)
    yield from order.split(batch_size)


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row angle arccos(<a, b>) of unit vectors; the clamp keeps arccos finite (its slope is infinite at 1)."""
    return torch.arccos((a * b).sum(1).clamp(-1 + 1e-6, 1 - 1e-6))


def surrogate_name(target: Target) -> str:
    return getattr(target, "name", type(target).__name__)


def is_convolution(module: torch.nn.Module) -> bool:
    """A 2-D convolution: torch's, or a compiled one of the TF.js graph ports (a 4-D ``weight`` and a
    ``kernel_size``; batch norm folded in and the activation fused, so its output is post-activation)."""
    if isinstance(module, torch.nn.Conv2d):
        return True
    weight = getattr(module, "weight", None)
    return hasattr(module, "kernel_size") and isinstance(weight, torch.Tensor) and weight.ndim == 4


@contextmanager
def feature_dropout(
    surrogates: list[Target], rate: float, gen: torch.Generator, kernel: tuple[int, int] | None = None
) -> Iterator[None]:
    """DFANet-style feature dropout: while active, convolution outputs (``is_convolution``) of every surrogate
    are dropped at ``rate``.

    Zhong & Deng (IEEE TIFS 2020) drop features of convolutional layers during the attack so every iteration
    sees a slightly different model (an implicit ensemble); OPOM's reference puts dropout after each 3 x 3
    convolution of its IR-50 (``kernel = (3, 3)``). ``kernel = None`` drops after every Conv2d, 1 x 1 ones too,
    which compounds with depth (on SFace a rate of 0.1 at all 27 convolutions left a mask useless). The keep
    masks come from ``gen`` so a seed fixes the result. Needs a torch ``network`` on the surrogate; hooks are
    removed on exit because targets are shared.
    """
    if rate <= 0:
        yield
        return
    handles = []

    def drop(_module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        keep = torch.rand(output.shape, generator=gen, device=gen.device, dtype=output.dtype) >= rate
        return output * keep.to(output.device, output.dtype) / (1 - rate)

    try:
        for s in surrogates:
            s.load()
            net = getattr(s, "network", None)
            convs = [m for m in net.modules() if is_convolution(m)
                     and (kernel is None or tuple(m.kernel_size) == tuple(kernel))] if net is not None else []
            if not convs:
                raise ValueError(
                    f"feature dropout (DFANet) needs a torch network with convolutions"
                    f"{'' if kernel is None else f' of kernel {kernel}'}; {surrogate_name(s)} has none: "
                    "set dfanet_rate=0 for it"
                )
            handles += [m.register_forward_hook(drop) for m in convs]
        yield
    finally:
        for h in handles:
            h.remove()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Depthwise Gaussian blur (reflect padding), differentiable, any N x C x H x W."""
    radius = max(1, int(3 * sigma + 0.5))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(coords**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    pad = F.conv2d(pad, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(pad, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
