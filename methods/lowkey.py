"""LowKey: untargeted ensemble attack with a smoothed view and an LPIPS penalty (Cherepanova et al., ICLR 2021).

Threat model: the recognizer enrols the user's protected photos (gallery side, as for Fawkes); each photo is
protected on its own (per-image) against an ensemble of surrogates. Per photo x, signed gradient *ascent* on
  J(x') = 1/(2M) sum_m sum_{v in {x', G(x')}} ||f_m(v) - f_m(x)||^2 / (D_m ||f_m(x)||) - c_sim * LPIPS(x', x)
where G is a Gaussian smoothing of the photo and D_m the embedding size (the public attack averages the squared
differences over feature dimensions, hence 1 / D_m).

Defaults, from the authors' public attack script (``lowkey_attack.py``): epsilon 0.05 (L-inf on 0..1), 50 steps
of step size 0.0025, LPIPS weight c_sim 0.05 with the AlexNet LPIPS, uniform random start in +-0.005, Gaussian
smoothing kernel 7 x 7, sigma 3 on the 112 x 112 aligned face. That script clips to epsilon only in its plain
'sgd' mode, not in the 'lpips' mode it runs; we declare epsilon as the budget and project onto it every step.
On our canvases a 112-crop pixel spans 1.25 canvas pixels, so the smoothing runs on the canvas with sigma
3 * 1.25 and a 9 x 9 kernel; LPIPS is taken on the face box of the canvas (``bench.data.canvas.face_region``), the
crop LowKey compares. LPIPS comes from ``bench.measures.lpips`` (offline AlexNet v0.1).

What still differs from the reference is listed in the class's ``deviations`` (shown by `bench list methods --json`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import (
    CANVAS_SCALE,
    COUNT,
    FRACTION,
    METHODS,
    Target,
    at_least,
    check_ranges,
    face_region,
    positive,
)
from methods.base import Method, Progress, Protector, batch_steps, no_progress, seeded_generator


@dataclass
class LowKeyConfig:
    epsilon: float = 0.05
    step_size: float = 0.0025
    steps: int = 50
    lpips_weight: float = 0.05
    random_start: float = 0.005
    blur_kernel: int = 7  # on the 112 aligned face
    blur_sigma: float = 3.0  # on the 112 aligned face
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_ranges(self, epsilon=FRACTION, step_size=positive(), steps=COUNT, lpips_weight=at_least(0),
                     random_start=at_least(0), blur_kernel=COUNT, blur_sigma=positive())


def gaussian_blur(x: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """Depthwise Gaussian smoothing with reflected borders (differentiable)."""
    coords = torch.arange(kernel, dtype=x.dtype, device=x.device) - (kernel - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(x.shape[1], 1, kernel, kernel).contiguous()
    pad = kernel // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), w, groups=x.shape[1])


def canvas_blur_size(kernel: int, sigma: float) -> tuple[int, float]:
    """The 112-crop smoothing expressed in canvas pixels (odd kernel)."""
    k = int(round(kernel * CANVAS_SCALE))
    return (k if k % 2 else k + 1), sigma * CANVAS_SCALE


class LowKeyProtector(Protector):
    def __init__(self, config: LowKeyConfig, surrogates: list[Target], seed: int, lpips: torch.nn.Module,
                 progress: Progress = no_progress):
        self.config = config
        self.surrogates = surrogates
        self.seed = seed
        self.lpips = lpips
        self.progress = progress  # the method's: the run shows the steps

    def objective(self, adv: torch.Tensor, x: torch.Tensor, clean: list[torch.Tensor]) -> torch.Tensor:
        """J per photo (N,), to be maximised."""
        cfg = self.config
        kernel, sigma = canvas_blur_size(cfg.blur_kernel, cfg.blur_sigma)
        smoothed = gaussian_blur(adv, kernel, sigma)
        feature = 0
        for s, c in zip(self.surrogates, clean, strict=True):
            scale = c.shape[1] * c.norm(dim=1)
            for view in (adv, smoothed):
                feature = feature + ((s.embed(view) - c) ** 2).sum(1) / scale
        feature = feature / (2 * len(self.surrogates))
        return feature - cfg.lpips_weight * self.lpips(face_region(adv), face_region(x)).view(-1)

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        gen = seeded_generator(self.seed, canvases.device)
        self.lpips.to(canvases.device)
        out = []
        step = self.progress("protect", batch_steps(len(canvases), cfg.batch_size, cfg.steps))
        for i in range(0, len(canvases), cfg.batch_size):
            x = canvases[i : i + cfg.batch_size]
            with torch.no_grad():
                clean = [s.embed(x) for s in self.surrogates]
            start = (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * cfg.random_start
            adv = (x + start.clamp(-cfg.epsilon, cfg.epsilon)).clamp(0, 1)
            for _ in range(cfg.steps):
                adv.requires_grad_(True)
                (grad,) = torch.autograd.grad(self.objective(adv, x, clean).sum(), adv)
                with torch.no_grad():
                    adv = adv + cfg.step_size * grad.sign()
                    adv = torch.min(torch.max(adv, x - cfg.epsilon), x + cfg.epsilon).clamp(0, 1)
                step()
            out.append(adv.detach())
        return torch.cat(out) if out else canvases.clone()


@METHODS.register("lowkey")
class LowKey(Method):
    kind = "per-image"
    Config = LowKeyConfig
    effort = "steps"
    paper = ("Cherepanova et al., LowKey: Leveraging Adversarial Attacks to Protect Social Media Users from "
             "Facial Recognition, ICLR 2021")
    reference = "the authors' public attack script lowkey_attack.py (LowKey, ICLR 2021)"
    deviations = (
        "epsilon is projected every step and declared as the budget; the script clips only in its 'sgd' mode, "
        "not in the 'lpips' mode it runs",
        "smoothing on the canvas with sigma 3 x 1.25 and a 9 x 9 kernel (the script: 7 x 7, sigma 3, on the 112 "
        "crop); LPIPS on the face box",
        "surrogates are this project's targets, not LowKey's own ensemble of IR-152 / ResNet-152 ArcFace and CosFace models",
    )

    @classmethod
    def describe(cls, **preset) -> dict:
        return {
            **super().describe(**preset),
            "loss": "ensemble feature distance of x' and blurred x' from clean, minus 0.05 * LPIPS",
        }

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        # found, not imported: lpips pulls in torchvision's models, seconds a listing need not spend
        if importlib.util.find_spec("lpips") is None:
            return False, "LowKey needs the offline AlexNet LPIPS: the lpips package is not installed (pip install lpips)"
        return True, None

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        if not surrogates:
            raise ValueError("lowkey needs at least one differentiable surrogate")
        from bench.api import get_lpips

        return LowKeyProtector(self.config, surrogates, seed, get_lpips(photos.device), self.progress)
