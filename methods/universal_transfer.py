"""Universal transfer masks: the MI-DI-TI recipe fitted once per user, so universal and per-image attacks compare
like for like (``universal-mi-di-ti`` against the per-image ``ti-dim``, ``universal-mi`` against ``mi-fgsm``).

Our universal variant of the per-image recipes (Dong et al., CVPR 2018 and CVPR 2019; Xie et al., CVPR 2019), in
the way UAP-style face masks (OPOM, Zhong & Deng, TPAMI 2022) turn a per-image attack into one mask per person:
each iteration sums, over the user's fit photos, the gradient with respect to the mask of the identity
classifier's cross-entropy at the user's label (``methods._classifier``), on DI-transformed masked photos
(torchattacks.TIFGSM's input diversity: with probability p a resize to [S, 1.1 S) and zero padding), smooths it
with TI's 15 x 15 Gaussian kernel, L1-normalises it into the momentum (mu = 1.0), and steps the mask by
alpha * sign(momentum), projected on the L-inf ball and the region. Defaults are ``ti-dim``'s per-image ones
(epsilon 16/255, alpha 1.6/255, p = 0.5) with 20 iterations over the whole fit set and, as the other universal
masks here, a uniform random start in +-alpha. Mask: 1 x 3 x 224 x 224 on the ArcFace face box by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
import torchattacks

from bench.api import METHODS, Target
from methods._classifier import ClassifierConfig, ClassifierMethod, check_linf, seeded
from methods._universal import apply_mask, check_region, project, region_support, uniform_start
from methods.base import MaskProtector, Protector, seeded_generator


@dataclass
class UniversalTransferConfig(ClassifierConfig):
    epsilon: float = 16 / 255
    step_size: float = 1.6 / 255
    iterations: int = 20
    decay: float = 1.0
    diversity_prob: float = 0.5
    resize_rate: float = 1.1
    kernel_size: int = 15  # 1: no translation-invariant smoothing
    nsig: float = 3.0
    region: str = "face-box"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("universal transfer", self.epsilon, self.step_size, self.iterations, "iterations")
        check_region(self.region)
        if not 0 <= self.diversity_prob <= 1 or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("universal transfer needs 0 <= diversity_prob <= 1 and an odd kernel_size >= 1")


@METHODS.register("universal-mi-di-ti")
@METHODS.register("universal-mi", diversity_prob=0.0, kernel_size=1)
class UniversalTransfer(ClassifierMethod):
    kind = "universal"
    Config = UniversalTransferConfig
    effort = "iterations"
    paper = ("universal form of MI-DI-TI: Dong et al., CVPR 2018 and CVPR 2019; Xie et al., CVPR 2019 "
             "(one mask per user as in OPOM, Zhong & Deng, TPAMI 2022)")
    reference = f"{paper}; DI and TI from torchattacks.TIFGSM"
    deviations: ClassVar[tuple[str, ...]] = (
        "no paper defines this universal variant: the per-image recipe on the summed gradient over the fit photos",
    )

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        c = self.config
        model = self.classifier(photos, surrogates, seed)
        # TIFGSM carries DI's transformation and TI's kernel; its attack loop is per-image, so only those are used.
        recipe = torchattacks.TIFGSM(model, len_kernel=c.kernel_size, nsig=c.nsig, resize_rate=c.resize_rate,
                                     diversity_prob=c.diversity_prob)
        kernel = recipe.stacked_kernel.to(photos.device, photos.dtype)
        targeted = c.goal == "impersonation"
        support = region_support(photos, c.region)
        mask = uniform_start(photos, c.step_size, support, seeded_generator(seed, photos.device))
        momentum = torch.zeros_like(mask)
        tick = self.progress("fit", c.iterations)
        with seeded(seed, photos.device):
            for _ in range(c.iterations):
                tick()
                mask.requires_grad_(True)
                grad = torch.zeros_like(mask)
                for batch in photos.split(c.batch_size):
                    loss = model.loss(recipe.input_diversity(apply_mask(batch, mask)), targeted)
                    grad += torch.autograd.grad(loss, mask)[0]
                with torch.no_grad():
                    if c.kernel_size > 1:
                        grad = F.conv2d(grad, kernel, padding="same", groups=3)
                    momentum = c.decay * momentum + grad / grad.abs().mean().clamp_min(1e-12)
                    mask = project(mask.detach() + c.step_size * momentum.sign(), c.epsilon, support)
        return MaskProtector(mask.detach(), {**self.base_info(model, surrogates), "fit_photos": len(photos)})
