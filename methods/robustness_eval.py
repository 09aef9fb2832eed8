"""Attacks from the robustness-evaluation literature on the identity classifier, through torchattacks: Jitter,
EOT-PGD, APGD and Carlini-Wagner L2.

Per-image; the loss is built on the identity classifier of ``methods._classifier`` (bank identities + the user).
Unlike the transfer attacks, APGD and CW return a photo unchanged when they never fool the surrogate classifier
(they report whether an adversarial example exists), and CW stops at the smallest L2 change that fools it; that
is what these attacks are, so it is kept.

- ``jitter``: Schwinn et al., "Exploring Misclassifications of Robust Neural Networks to Enhance Adversarial
  Attacks", 2021 (arXiv 2105.10304); torchattacks.Jitter with its defaults (L-inf 8/255, 10 steps of 2/255,
  logit scale 10, noise std 0.1, random start).
- ``eot-pgd``: PGD on the expectation over a random input transformation (Athalye et al., "Synthesizing Robust
  Adversarial Examples", ICML 2018); torchattacks.EOTPGD with its defaults (L-inf 8/255, 10 steps of 2/255, 2
  samples per step). The surrogates are deterministic, so the randomness is ours: each sample rescales the canvas
  by a factor uniform in [0.75, 1] and back (antialiased bilinear), as a recogniser's resize would.
- ``apgd``: Croce & Hein, "Reliable Evaluation of Adversarial Robustness with an Ensemble of Diverse
  Parameter-free Attacks", ICML 2020; torchattacks.APGD: APGD-CE, 100 iterations, 1 restart, rho 0.75, L-inf
  8/255 (the paper's CIFAR-10 budget; ImageNet used 4/255). No targeted mode.
- ``cw`` and ``cw-impersonation``: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks",
  IEEE S&P 2017; torchattacks.CW: L2 attack in tanh space, c = 1, kappa = 0, Adam lr 0.01. Budget: none; the L2
  change is minimised, not bounded (declared as such).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
import torchattacks

from bench.api import METHODS
from methods._classifier import TORCHATTACKS, ClassifierConfig, IdentityClassifier, TransferAttack, check_linf
from methods.base import Budget


@dataclass
class JitterConfig(ClassifierConfig):
    epsilon: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    logit_scale: float = 10.0
    noise_std: float = 0.1
    random_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("jitter", self.epsilon, self.step_size, self.steps)
        if self.logit_scale <= 0 or self.noise_std < 0:
            raise ValueError("jitter needs logit_scale > 0 and noise_std >= 0")


@METHODS.register("jitter")
class Jitter(TransferAttack):
    Config = JitterConfig
    paper = ("Schwinn et al., Exploring Misclassifications of Robust Neural Networks to Enhance Adversarial "
             "Attacks, arXiv 2105.10304, 2021")
    reference = f"{paper}; code: torchattacks.Jitter, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.Jitter:
        c = self.config
        return torchattacks.Jitter(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, scale=c.logit_scale,
                                   std=c.noise_std, random_start=c.random_start)


@dataclass
class EOTPGDConfig(ClassifierConfig):
    epsilon: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    eot_samples: int = 2
    min_scale: float = 0.75  # each sample rescales the canvas by a factor uniform in [min_scale, 1]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("eot-pgd", self.epsilon, self.step_size, self.steps)
        if self.eot_samples < 1 or not 0 < self.min_scale <= 1:
            raise ValueError("eot-pgd needs eot_samples >= 1 and 0 < min_scale <= 1")


def random_rescale(canvases: torch.Tensor, min_scale: float) -> torch.Tensor:
    """Down-sample by a random factor in [min_scale, 1] and back (differentiable; torch's global RNG)."""
    size = canvases.shape[-1]
    factor = min_scale + (1 - min_scale) * float(torch.rand(()))
    small = F.interpolate(canvases, size=max(1, round(size * factor)), mode="bilinear", antialias=True,
                          align_corners=False)
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)


@METHODS.register("eot-pgd")
class EOTPGD(TransferAttack):
    Config = EOTPGDConfig
    paper = "Athalye et al., Synthesizing Robust Adversarial Examples, ICML 2018"
    reference = f"{paper}; code: torchattacks.EOTPGD, {TORCHATTACKS}"
    deviations: ClassVar[tuple[str, ...]] = (
        "the transformation distribution (random rescale in [0.75, 1]) is ours: the surrogates are deterministic",
    )

    def transform(self):
        return lambda canvases: random_rescale(canvases, self.config.min_scale)

    def attack(self, model: IdentityClassifier) -> torchattacks.EOTPGD:
        c = self.config
        return torchattacks.EOTPGD(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, eot_iter=c.eot_samples)


@dataclass
class APGDConfig(ClassifierConfig):
    epsilon: float = 8 / 255
    steps: int = 100
    restarts: int = 1
    loss: str = "ce"  # "ce" (APGD-CE) or "dlr"
    rho: float = 0.75

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("apgd", self.epsilon, self.epsilon, self.steps)
        if self.restarts < 1 or self.loss not in ("ce", "dlr") or not 0 < self.rho < 1:
            raise ValueError("apgd needs restarts >= 1, loss 'ce' or 'dlr', 0 < rho < 1")


@METHODS.register("apgd")
class APGD(TransferAttack):
    Config = APGDConfig
    targeted_mode = False
    paper = ("Croce & Hein, Reliable Evaluation of Adversarial Robustness with an Ensemble of Diverse "
             "Parameter-free Attacks, ICML 2020")
    reference = f"{paper}; code: github.com/fra31/auto-attack via torchattacks.APGD, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.APGD:
        c = self.config
        return torchattacks.APGD(model, norm="Linf", eps=c.epsilon, steps=c.steps, n_restarts=c.restarts,
                                 loss=c.loss, rho=c.rho)


@dataclass
class CWConfig(ClassifierConfig):
    c: float = 1.0
    kappa: float = 0.0
    steps: int = 100
    lr: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.c <= 0 or self.kappa < 0 or self.steps < 1 or self.lr <= 0:
            raise ValueError("cw needs c > 0, kappa >= 0, steps >= 1, lr > 0")


@METHODS.register("cw")
@METHODS.register("cw-impersonation", goal="impersonation")
class CW(TransferAttack):
    Config = CWConfig
    paper = "Carlini & Wagner, Towards Evaluating the Robustness of Neural Networks, IEEE S&P 2017"
    reference = f"{paper}; code: torchattacks.CW, {TORCHATTACKS}"
    deviations: ClassVar[tuple[str, ...]] = (
        "no binary search over c and 100 Adam steps (the paper searches c over 9 rounds of up to 10,000 steps); "
        "torchattacks.CW implements no search",
    )

    def budget(self) -> Budget:
        return Budget(note="L2 change minimised, not bounded")

    def attack(self, model: IdentityClassifier) -> torchattacks.CW:
        c = self.config
        return torchattacks.CW(model, c=c.c, kappa=c.kappa, steps=c.steps, lr=c.lr)
