"""PGD dodging in embedding space: a per-image baseline (Madry et al., ICLR 2018, applied to face embeddings).

Threat model: per photo, L-inf budget ``epsilon`` (8/255 on the 0..1 scale), ``steps`` sign-gradient steps of
``step_size`` from a uniform random start in the budget (the start matters: the cosine loss is flat at x' = x,
see docs/protocol.md, "A pitfall shared by angle and cosine losses"). Loss: the mean over the surrogate ensemble
of cos(f(x'), f(x)), minimised, so the protected embedding turns away from the clean one. Works on the whole
canvas; only pixels a surrogate samples move.

What still differs from the reference is listed in the class's ``deviations`` (shown by `bench list methods --json`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.api import COUNT, FRACTION, METHODS, Target, check_ranges, positive
from methods.base import Method, Progress, Protector, batch_steps, no_progress, seeded_generator


@dataclass
class PGDConfig:
    epsilon: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 20
    random_start: bool = True
    batch_size: int = 16

    def __post_init__(self) -> None:
        check_ranges(self, epsilon=FRACTION, step_size=positive(), steps=COUNT, batch_size=COUNT)


def cosine_to_clean(surrogates: list[Target], x: torch.Tensor, clean: list[torch.Tensor]) -> torch.Tensor:
    """Per-photo mean cosine similarity to the clean embeddings over the ensemble (N,)."""
    sims = [(s.embed(x) * c).sum(1) for s, c in zip(surrogates, clean, strict=True)]
    return torch.stack(sims).mean(0)


class PGDProtector(Protector):
    def __init__(self, config: PGDConfig, surrogates: list[Target], seed: int, progress: Progress = no_progress):
        self.config = config
        self.surrogates = surrogates
        self.seed = seed
        self.progress = progress  # the method's: the run shows the steps

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        out = []
        gen = seeded_generator(self.seed, canvases.device)
        step = self.progress("protect", batch_steps(len(canvases), cfg.batch_size, cfg.steps))
        for i in range(0, len(canvases), cfg.batch_size):
            x = canvases[i : i + cfg.batch_size]
            with torch.no_grad():
                clean = [s.embed(x) for s in self.surrogates]
            delta = torch.zeros_like(x)
            if cfg.random_start:
                delta = (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * cfg.epsilon
            delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
            for _ in range(cfg.steps):
                loss = cosine_to_clean(self.surrogates, x + delta, clean).sum()
                (grad,) = torch.autograd.grad(loss, delta)
                with torch.no_grad():
                    delta -= cfg.step_size * grad.sign()
                    delta.clamp_(-cfg.epsilon, cfg.epsilon)
                    delta.copy_((x + delta).clamp(0, 1) - x)
                step()
            out.append((x + delta).detach())
        return torch.cat(out) if out else canvases.clone()


@METHODS.register("pgd")
class PGD(Method):
    kind = "per-image"
    Config = PGDConfig
    effort = "steps"
    paper = "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018"
    reference = "paper (Madry et al., ICLR 2018); no face-privacy reference code"
    deviations = ("a baseline of this project: PGD dodging on the cosine to the clean embedding, not a "
                  "published face-privacy method",)

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        if not surrogates:
            raise ValueError("pgd needs at least one differentiable surrogate")
        return PGDProtector(self.config, surrogates, seed, self.progress)
