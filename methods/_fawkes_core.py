"""What the two Fawkes rules share: the mode table, the tanh-space image, the DSSIM measures and the shrink.

Both optimise a modifier m in tanh space (Fawkes' ``differentiator.py``):
  x'(m) = tanh(arctanh((x - 0.5) * k) + m) / k + 0.5,  k = 2 - 1e-6  (tanh space keeps x' inside [0, 1])
with x' held within +-15/255 of x (Fawkes clips the change to +-15 on its 0..255 scale) and m non-zero only
inside the canvas face box. Fawkes maps m to pixels on its 0..255 scale as 255 * (tanh(w + m) / k + 0.5); we
map it on 0..1: the same w for the same photo and a loss that is the same function of m (SSIM is scale-free
given the data range; features do not depend on the pixel scale after each model's own preprocessing), so the
gradients in m, and with them Adadelta's steps, are identical and the learning rates carry over unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.api import COUNT, FACE_BOX, Interval, check_ranges, dssim, face_region, positive

TANH_K = 2 - 1e-6  # Fawkes' tanh constant: keeps arctanh finite at 0 and 1

# Fawkes v1.0 ``protection.py: mode2param``: DSSIM threshold, steps, Adadelta learning rate.
MODES = {"low": (0.004, 40, 25.0), "mid": (0.012, 75, 20.0), "high": (0.017, 150, 15.0)}


@dataclass
class CloakConfig:
    """The settings both rules share; defaults from Fawkes v1.0 (``protection.py``, ``differentiator.py``)."""

    mode: str = "low"
    dssim_budget: float | None = None  # the DSSIM threshold; None: from the mode
    steps: int | None = None  # None: from the mode
    lr: float | None = None  # None: from the mode (Adadelta, tanh space)
    penalty: float = 1e6  # c, v1.0's ``--sd``
    max_change: float = 15 / 255
    init_scale: float = 1e-4
    first_step_kick: float = 0.01
    adadelta_rho: float = 0.95  # the Keras defaults v1.0 runs with
    adadelta_eps: float = 1e-7
    bisection_steps: int = 12  # perturbation scale found to 2^-12
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"fawkes mode must be one of {sorted(MODES)}, got {self.mode!r}")
        budget, steps, lr = MODES[self.mode]
        self.dssim_budget = budget if self.dssim_budget is None else self.dssim_budget
        self.steps = steps if self.steps is None else self.steps
        self.lr = lr if self.lr is None else self.lr
        check_ranges(self, dssim_budget=Interval(0, 0.5, low_open=True, high_open=True), steps=COUNT, lr=positive())
        if not 0 < self.max_change <= 1:
            raise ValueError("fawkes needs 0 < max_change <= 1")


def face_box_mask(like: torch.Tensor) -> torch.Tensor:
    """1 inside the canvas' ArcFace box, 0 elsewhere (1 x 1 x H x W)."""
    a, b = FACE_BOX
    mask = torch.zeros(1, 1, *like.shape[-2:], device=like.device, dtype=like.dtype)
    mask[..., a:b, a:b] = 1
    return mask


def face_dssim(protected: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """DSSIM on the canvas face box (N,): the region the harness checks a declared DSSIM budget on."""
    return dssim(face_region(protected), face_region(clean))


def worst_dssim(protected: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """DSSIM on the face box and on the whole canvas, whichever is larger (N,)."""
    return torch.maximum(face_dssim(protected, clean), dssim(protected, clean))


def shrink_to_dssim(protected: torch.Tensor, clean: torch.Tensor, budget: float, steps: int,
                    measure: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = worst_dssim) -> torch.Tensor:
    """Scale each photo's perturbation by the largest s in [0, 1] found by bisection with measure <= budget.

    s = 0 (the clean photo) always qualifies, so the bound holds on every output; x + s (x' - x) stays in [0, 1].
    """
    protected = protected.detach()
    delta = protected - clean
    with torch.no_grad():
        ok = measure(protected, clean) <= budget
        if bool(ok.all()):
            return protected
        lo = ok.to(clean.dtype)
        hi = torch.ones_like(lo)
        for _ in range(steps):
            mid = (lo + hi) / 2
            fits = measure(clean + mid.view(-1, 1, 1, 1) * delta, clean) <= budget
            lo = torch.where(fits, mid, lo)
            hi = torch.where(fits, hi, mid)
        return clean + lo.view(-1, 1, 1, 1) * delta


class TanhImage:
    """x'(m) for a batch of clean canvases x, and the optimiser over the modifier m."""

    def __init__(self, x: torch.Tensor, config: CloakConfig, gen: torch.Generator):
        self.x = x
        self.max_change = config.max_change
        self.box = face_box_mask(x)
        self.w = torch.atanh((x - 0.5) * TANH_K)
        init = (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * config.init_scale
        self.modifier = (init * self.box).requires_grad_(True)
        self._opt_args = {"lr": config.lr, "rho": config.adadelta_rho, "eps": config.adadelta_eps}
        self.optimizer = self.new_optimizer()

    def new_optimizer(self) -> torch.optim.Adadelta:
        return torch.optim.Adadelta([self.modifier], **self._opt_args)

    def __call__(self) -> torch.Tensor:
        raw = torch.tanh(self.w + self.modifier * self.box) / TANH_K + 0.5
        return self.x + (raw - self.x).clamp(-self.max_change, self.max_change)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def kick(self, size: float) -> None:
        """Fawkes' extra signed step on m after the first update (against the last gradient)."""
        with torch.no_grad():
            self.modifier -= size * self.modifier.grad.sign()


__all__ = ["TANH_K", "MODES", "CloakConfig", "face_box_mask", "face_dssim", "worst_dssim", "shrink_to_dssim",
           "TanhImage"]
