"""Momentum transfer attacks on the identity classifier, through torchattacks: MI-, NI-, SI-NI-, VMI- and VNI-FGSM.

Per-image; the loss is the cross-entropy of the identity classifier of ``methods._classifier`` (bank identities +
the user). Defaults are the papers' ImageNet setting, which all these papers share: L-inf epsilon 16/255 on the
0..1 scale, T = 10 iterations of step alpha = epsilon / T = 1.6/255, momentum decay mu = 1.0.

- ``mi-fgsm`` (dodging) and ``mi-fgsm-impersonation`` (torchattacks' targeted mode towards one bank identity;
  the paper also runs targeted attacks): Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018.
- ``ni-fgsm`` and ``si-ni-fgsm`` (m = 5 scale copies x / 2^i): Lin et al., "Nesterov Accelerated Gradient and
  Scale Invariance for Adversarial Attacks", ICLR 2020.
- ``vmi-fgsm`` and ``vni-fgsm`` (N = 20 neighbours in +-beta * epsilon, beta = 1.5; torchattacks' default N is 5,
  the paper's 20): Wang & He, "Enhancing the Transferability of Adversarial Attacks through Variance Tuning",
  CVPR 2021.
"""

from __future__ import annotations

from dataclasses import dataclass

import torchattacks

from bench.api import METHODS
from methods._classifier import TORCHATTACKS, ClassifierConfig, IdentityClassifier, TransferAttack, check_linf


@dataclass
class MomentumConfig(ClassifierConfig):
    epsilon: float = 16 / 255
    step_size: float = 1.6 / 255
    steps: int = 10
    decay: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("momentum attacks", self.epsilon, self.step_size, self.steps)
        if self.decay < 0:
            raise ValueError("decay (momentum) must be >= 0")


@METHODS.register("mi-fgsm")
@METHODS.register("mi-fgsm-impersonation", goal="impersonation")
class MIFGSM(TransferAttack):
    Config = MomentumConfig
    paper = "Dong et al., Boosting Adversarial Attacks with Momentum, CVPR 2018"
    reference = f"{paper}; code: torchattacks.MIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.MIFGSM:
        c = self.config
        return torchattacks.MIFGSM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, decay=c.decay)


@METHODS.register("ni-fgsm")
class NIFGSM(TransferAttack):
    Config = MomentumConfig
    paper = "Lin et al., Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks, ICLR 2020"
    reference = f"{paper}; code: torchattacks.NIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.NIFGSM:
        c = self.config
        return torchattacks.NIFGSM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, decay=c.decay)


@dataclass
class SINIConfig(MomentumConfig):
    copies: int = 5  # scale copies x / 2^i, i < copies

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.copies < 1:
            raise ValueError("si-ni-fgsm needs copies >= 1")


@METHODS.register("si-ni-fgsm")
class SINIFGSM(TransferAttack):
    Config = SINIConfig
    paper = NIFGSM.paper
    reference = f"{paper}; code: torchattacks.SINIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.SINIFGSM:
        c = self.config
        return torchattacks.SINIFGSM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, decay=c.decay,
                                     m=c.copies)


@dataclass
class VarianceConfig(MomentumConfig):
    neighbours: int = 20  # N, sampled in the +-beta * epsilon box around the current point
    beta: float = 1.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.neighbours < 1 or self.beta <= 0:
            raise ValueError("variance tuning needs neighbours >= 1 and beta > 0")


@METHODS.register("vmi-fgsm")
class VMIFGSM(TransferAttack):
    Config = VarianceConfig
    paper = "Wang & He, Enhancing the Transferability of Adversarial Attacks through Variance Tuning, CVPR 2021"
    reference = f"{paper}; code: github.com/JHL-HUST/VT via torchattacks.VMIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.VMIFGSM:
        c = self.config
        return torchattacks.VMIFGSM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, decay=c.decay,
                                    N=c.neighbours, beta=c.beta)


@METHODS.register("vni-fgsm")
class VNIFGSM(TransferAttack):
    Config = VarianceConfig
    paper = VMIFGSM.paper
    reference = f"{paper}; code: github.com/JHL-HUST/VT via torchattacks.VNIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.VNIFGSM:
        c = self.config
        return torchattacks.VNIFGSM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, decay=c.decay,
                                    N=c.neighbours, beta=c.beta)
