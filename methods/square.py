"""Square Attack: a score-based black-box attack on the identity classifier, through torchattacks.

Andriushchenko et al., "Square Attack: a Query-Efficient Black-box Adversarial Attack via Random Search", ECCV
2020; torchattacks.Square. Random search over square-shaped L-inf updates; only the classifier's scores are used
(no gradients), so its surrogates may be black-box targets (native dlib, OpenCV SFace): ``methods._classifier``
queries their embeddings. The paper's ImageNet L-inf setting: epsilon 0.05 on the 0..1 scale, p_init 0.05,
margin loss, 10,000 queries per photo. Per-image, dodging by default; ``square-impersonation`` runs the paper's
targeted mode towards one bank identity. The search stops on a photo once it is misclassified; a photo it never
gets misclassified keeps its best point by the loss, as the authors' code returns it (torchattacks.Square, after
auto-attack, returns such a photo unchanged, reporting failure: ``BestPointSquare`` restores the authors' output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torchattacks

from bench.api import METHODS
from methods._classifier import TORCHATTACKS, ClassifierConfig, IdentityClassifier, TransferAttack, check_linf
from methods.base import seeded


@dataclass
class SquareConfig(ClassifierConfig):
    epsilon: float = 0.05
    queries: int = 10_000
    p_init: float = 0.05
    loss: str = "margin"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_linf("square", self.epsilon, self.epsilon, self.queries)
        if not 0 < self.p_init <= 1 or self.loss not in ("margin", "ce"):
            raise ValueError("square needs 0 < p_init <= 1 and loss 'margin' or 'ce'")


class BestPointSquare(torchattacks.Square):
    """One run of the random search whose best point is kept for every photo, fooled or not."""

    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.init_hyperparam(x)
        with seeded(self.seed, x.device):  # torchattacks' search draws from torch's global RNG
            return self.attack_single_run(x, self.get_target_label(x, y) if self.targeted else y)[1]


@METHODS.register("square")
@METHODS.register("square-impersonation", goal="impersonation")
class Square(TransferAttack):
    Config = SquareConfig
    effort = "queries"  # at most; a photo stops once fooled
    needs_gradients = False
    deviations: ClassVar[tuple[str, ...]] = (
        "one run (no restarts); a photo never misclassified keeps its best point, as in the authors' code "
        "(torchattacks returns it unchanged)",
    )
    paper = ("Andriushchenko et al., Square Attack: a Query-Efficient Black-box Adversarial Attack via Random "
             "Search, ECCV 2020")
    reference = f"{paper}; code: github.com/max-andr/square-attack via torchattacks.Square, {TORCHATTACKS}"

    def attack(self, model: IdentityClassifier) -> BestPointSquare:
        c = self.config
        return BestPointSquare(model, norm="Linf", eps=c.epsilon, n_queries=c.queries, p_init=c.p_init, loss=c.loss)
