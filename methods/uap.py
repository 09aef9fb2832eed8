"""UAP: a plain universal adversarial perturbation per user, the simplest personalized-mask baseline.

In the spirit of Moosavi-Dezfooli et al., "Universal adversarial perturbations", CVPR 2017, reduced to the
iterative sign-gradient form used by later face-privacy work: one mask for all of a user's photos, learned by
minimising the mean cosine similarity (over the user's fit photos and the surrogate ensemble) between the masked
and the clean embedding. Threat model: query-side (the protected photos are probes against a clean gallery).
Budget: L-inf ``epsilon`` = 8/255 on the 0..1 scale, step 1/255, 20 sign steps on the mean gradient over the
fit photos (full batch), uniform random start in +-step (the cosine loss has zero slope at the clean image).
Mask: 1 x 3 x 224 x 224 on the canvas, restricted to the ArcFace face box by default (``region``).

What still differs from the reference is listed in the class's ``deviations`` (shown by `bench list methods --json`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.api import COUNT, FRACTION, METHODS, Target, check_ranges, positive
from methods._universal import (
    apply_mask,
    check_photos,
    check_region,
    check_surrogates,
    clean_embeddings,
    project,
    region_support,
    surrogate_name,
    uniform_start,
)
from methods.base import MaskProtector, Method, Protector, seeded_generator


@dataclass
class UAPConfig:
    epsilon: float = 8 / 255
    step_size: float = 1 / 255
    iterations: int = 20
    batch_size: int = 16  # gradient accumulation chunk; the step uses the gradient over all fit photos
    region: str = "face-box"

    def __post_init__(self) -> None:
        check_ranges(self, epsilon=FRACTION, step_size=positive(), iterations=COUNT, batch_size=COUNT)
        check_region(self.region)


@METHODS.register("uap")
class UAP(Method):
    kind = "universal"
    Config = UAPConfig
    effort = "iterations"
    paper = "Moosavi-Dezfooli et al., Universal adversarial perturbations, CVPR 2017 (sign-gradient form)"
    reference = "paper (Moosavi-Dezfooli et al., CVPR 2017)"
    deviations = ("a baseline of this project: one mask per user by sign steps on the mean cosine to the clean "
                  "embeddings, not the paper's DeepFool-based accumulation over a class-agnostic data set",)

    @classmethod
    def describe(cls, **preset) -> dict:
        return {**super().describe(**preset), "loss": "mean cosine to the clean embedding"}

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        cfg = self.config
        check_photos(photos, "uap")
        check_surrogates(surrogates, "uap")
        gen = seeded_generator(seed, photos.device)
        support = region_support(photos, cfg.region)
        clean = clean_embeddings(surrogates, photos)
        mask = uniform_start(photos, cfg.step_size, support, gen)
        tick = self.progress("fit", cfg.iterations)
        for _ in range(cfg.iterations):
            tick()
            mask.requires_grad_(True)
            grad = torch.zeros_like(mask)
            for i in range(0, len(photos), cfg.batch_size):
                x = apply_mask(photos[i : i + cfg.batch_size], mask)
                loss = sum(
                    (s.embed(x) * c[i : i + cfg.batch_size]).sum(1).sum()
                    for s, c in zip(surrogates, clean, strict=True)
                )
                grad += torch.autograd.grad(loss, mask)[0]
            with torch.no_grad():
                mask = project(mask - cfg.step_size * grad.sign(), cfg.epsilon, support)
        info = {"surrogates": [surrogate_name(s) for s in surrogates], "fit_photos": len(photos)}
        return MaskProtector(mask.detach(), info)
