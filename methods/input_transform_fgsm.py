"""Transfer attacks that transform inputs or gradients, through torchattacks: DI-, TI- and PI-FGSM.

Per-image, dodging; the loss is the cross-entropy of the identity classifier of ``methods._classifier`` (bank
identities + the user). Budgets are L-inf on the 0..1 scale, from each paper's ImageNet setting.

- ``di-fgsm`` (DI2-FGSM): Xie et al., "Improving Transferability of Adversarial Examples with Input Diversity",
  CVPR 2019; torchattacks.DIFGSM. epsilon 15/255, step 1/255, min(epsilon*255 + 4, 1.25 * epsilon*255) = 18
  iterations, no momentum; with probability p = 0.5 the input is resized to rnd x rnd, rnd uniform in [S, 1.1 S),
  and zero-padded to 1.1 S (the paper resizes 299 to [299, 330) and pads to 330).
- ``ti-fgsm`` and ``ti-dim``: Dong et al., "Evading Defenses to Transferable Adversarial Examples by
  Translation-Invariant Attacks", CVPR 2019; torchattacks.TIFGSM. The gradient is smoothed by a 15 x 15 Gaussian
  kernel (radius 3 sigma), epsilon 16/255. ``ti-fgsm`` is the paper's one-step TI-FGSM; ``ti-dim`` its strongest
  combination TI-DIM (MI-FGSM momentum 1.0 + DI with p = 0.5 + TI), 10 iterations of 1.6/255.
- ``pi-fgsm``: Gao et al., "Patch-wise Attack for Fooling Deep Neural Network", ECCV 2020; torchattacks.PIFGSM:
  epsilon 16/255, 10 iterations, amplification factor 10, 3 x 3 projection kernel. No targeted mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torchattacks

from bench.api import METHODS
from methods._classifier import TORCHATTACKS, ClassifierConfig, IdentityClassifier, TransferAttack, check_linf


@dataclass
class DIConfig(ClassifierConfig):
    epsilon: float = 15 / 255
    step_size: float = 1 / 255
    steps: int = 18
    decay: float = 0.0  # 1.0 is the paper's M-DI2-FGSM
    resize_rate: float = 1.1
    diversity_prob: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("input diversity", self.epsilon, self.step_size, self.steps)
        if not 0 <= self.diversity_prob <= 1 or self.resize_rate <= 0 or self.decay < 0:
            raise ValueError("input diversity needs 0 <= diversity_prob <= 1, resize_rate > 0, decay >= 0")


@METHODS.register("di-fgsm")
class DIFGSM(TransferAttack):
    Config = DIConfig
    paper = "Xie et al., Improving Transferability of Adversarial Examples with Input Diversity, CVPR 2019"
    reference = f"{paper}; code: torchattacks.DIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.DIFGSM:
        c = self.config
        return torchattacks.DIFGSM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, decay=c.decay,
                                   resize_rate=c.resize_rate, diversity_prob=c.diversity_prob)


@dataclass
class TIConfig(DIConfig):
    epsilon: float = 16 / 255
    step_size: float = 16 / 255
    steps: int = 1
    diversity_prob: float = 0.0
    kernel_size: int = 15
    nsig: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size < 1 or self.kernel_size % 2 == 0 or self.nsig <= 0:
            raise ValueError("translation invariance needs an odd kernel_size >= 1 and nsig > 0")


@METHODS.register("ti-fgsm")
@METHODS.register("ti-dim", step_size=1.6 / 255, steps=10, decay=1.0, diversity_prob=0.5)
class TIFGSM(TransferAttack):
    Config = TIConfig
    paper = ("Dong et al., Evading Defenses to Transferable Adversarial Examples by Translation-Invariant Attacks, "
             "CVPR 2019")
    reference = f"{paper}; code: torchattacks.TIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.TIFGSM:
        c = self.config
        return torchattacks.TIFGSM(model, eps=c.epsilon, alpha=c.step_size, steps=c.steps, decay=c.decay,
                                   len_kernel=c.kernel_size, nsig=c.nsig, resize_rate=c.resize_rate,
                                   diversity_prob=c.diversity_prob)


@dataclass
class PIConfig(ClassifierConfig):
    epsilon: float = 16 / 255
    steps: int = 10
    amplification: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("pi-fgsm", self.epsilon, self.epsilon / max(1, self.steps), self.steps)
        if self.amplification <= 0:
            raise ValueError("pi-fgsm needs amplification > 0")


@METHODS.register("pi-fgsm")
class PIFGSM(TransferAttack):
    Config = PIConfig
    targeted_mode = False
    paper = "Gao et al., Patch-wise Attack for Fooling Deep Neural Network, ECCV 2020"
    reference = f"{paper}; code: torchattacks.PIFGSM, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> torchattacks.PIFGSM:
        c = self.config
        return torchattacks.PIFGSM(model, max_epsilon=c.epsilon, num_iter_set=c.steps, amplification=c.amplification)
