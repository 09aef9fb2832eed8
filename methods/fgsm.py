"""The gradient-sign family on the identity classifier, through torchattacks: FGSM, BIM and PGD (cross-entropy).

Per-image, dodging by default; the loss is the cross-entropy of the identity classifier of ``methods._classifier``
(bank identities + the user) at the user's label, ascended. Budgets are L-inf on the 0..1 scale.

- ``fgsm``: one step x' = clip(x + epsilon * sign(grad)); Goodfellow et al., "Explaining and Harnessing
  Adversarial Examples", ICLR 2015; torchattacks.FGSM. The paper fixes no budget for natural photos (its ImageNet
  example used 0.007); we use the benchmark's common 8/255.
- ``bim``: Kurakin et al., "Adversarial Examples in the Physical World", ICLR workshop 2017; torchattacks.BIM.
  The paper's rule: step 1/255 and min(epsilon*255 + 4, 1.25 * epsilon*255) steps (``steps = 0``), so 10 at 8/255.
- ``pgd-ce``: Madry et al., ICLR 2018; torchattacks.PGD with the CIFAR-10 evaluation setting (8/255, step 2/255,
  20 steps, uniform random start). It differs from ``pgd`` only in the loss: ``pgd`` lowers the cosine to the
  clean embedding, ``pgd-ce`` raises the classifier's cross-entropy at the user's label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torchattacks

from bench.api import METHODS
from methods._classifier import TORCHATTACKS, ClassifierConfig, IdentityClassifier, TransferAttack, check_linf


@dataclass
class FGSMConfig(ClassifierConfig):
    epsilon: float = 8 / 255

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("fgsm", self.epsilon, self.epsilon, 1)


@METHODS.register("fgsm")
class FGSM(TransferAttack):
    Config = FGSMConfig
    effort = None  # a single step
    paper = "Goodfellow et al., Explaining and Harnessing Adversarial Examples, ICLR 2015"
    reference = f"{paper}; code: torchattacks.FGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.FGSM:
        return torchattacks.FGSM(model, eps=self.config.epsilon)


@dataclass
class BIMConfig(ClassifierConfig):
    epsilon: float = 8 / 255
    step_size: float = 1 / 255
    steps: int = 0  # 0: the paper's rule, min(epsilon*255 + 4, 1.25 * epsilon*255)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("bim", self.epsilon, self.step_size, max(1, self.steps))


@METHODS.register("bim")
class BIM(TransferAttack):
    Config = BIMConfig
    effort = None  # steps 0 means the paper's rule, which depends on epsilon
    paper = "Kurakin et al., Adversarial Examples in the Physical World, ICLR workshop 2017"
    reference = f"{paper}; code: torchattacks.BIM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.BIM:
        c = self.config
        return torchattacks.BIM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps)


@dataclass
class PGDCEConfig(ClassifierConfig):
    epsilon: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 20
    random_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("pgd-ce", self.epsilon, self.step_size, self.steps)


@METHODS.register("pgd-ce")
class PGDCE(TransferAttack):
    Config = PGDCEConfig
    paper = "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018"
    reference = f"{paper}; code: torchattacks.PGD, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.PGD:
        c = self.config
        return torchattacks.PGD(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, random_start=c.random_start)
