"""The surrogate ensemble as an identity classifier: the one adapter through which torchattacks' attacks (and our
universal, patch and query-only attacks) see face recognisers.

Not a plug-in (the leading underscore keeps the registry from importing it as one). torchattacks attacks a
classifier ``model(images in [0, 1]) -> logits`` with the true class as label. A face recogniser embeds, so the
classes here are identities with one template each: the ``bank_identities`` people of the run's identity bank
(``bench.run.identity_bank``, handed over by the run context: people who are not evaluated users) and, last, the user, whose template is the unit
mean embedding of their fit photos. For canvases x (N x 3 x S x S in [0, 1]; any S, since DI pads to a larger
square and every target's ``Framing.crop`` resamples any size)

    logits[n, k] = scale * mean over surrogates s of cos(f_s(x_n), t_{s,k})

with scale 64, the feature scale of the cosine-softmax heads face recognisers are trained with (CosFace, Wang et
al., CVPR 2018; ArcFace, Deng et al., CVPR 2019). Dodging: the label is the user's index and the attack runs
untargeted (the user's logit falls below another's). Impersonation: the label is one bank identity drawn by the
seed and the attack runs in torchattacks' targeted mode (that identity's logit rises to the top).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import torchattacks

from bench.api import IdentityBank, Need, Target
from methods._universal import check_photos, surrogate_name
from methods.base import GOALS, Method, Progress, Protector, batch_steps, no_progress, seeded

COSINE_SCALE = 64.0
TORCHATTACKS = f"torchattacks {torchattacks.__version__} (github.com/Harry24k/adversarial-attacks-pytorch)"


@dataclass
class ClassifierConfig:
    """Fields every method on the adapter shares; each method's config extends it with its own."""

    goal: str = "dodging"
    scale: float = COSINE_SCALE
    bank_identities: int = 40
    bank_photos: int = 2
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, got {self.goal!r}")
        if self.scale <= 0 or self.batch_size < 1:
            raise ValueError("the identity classifier needs scale > 0 and batch_size >= 1")
        if self.bank_identities < 1 or self.bank_photos < 1:
            raise ValueError("the identity bank needs bank_identities >= 1 and bank_photos >= 1")


def check_linf(name: str, epsilon: float, step_size: float, steps: int, steps_key: str = "steps") -> None:
    """An L-inf attack's bounds, the message naming the config's own key for its step count."""
    if not 0 < epsilon <= 1 or step_size <= 0 or steps < 1:
        raise ValueError(f"{name} needs 0 < epsilon <= 1, step_size > 0, {steps_key} >= 1")


class IdentityClassifier(torch.nn.Module):
    """(bank identities + user)-way classifier over the surrogates; ``label`` is the class the attack uses.

    ``transform``: an optional random, differentiable input transformation (EOT-PGD averages gradients over it).
    The surrogates stay plain attributes, not submodules: targets are shared by the run and keep their own state.
    """

    def __init__(self, surrogates: list[Target], templates: list[torch.Tensor], names: list[str], label: int,
                 scale: float, device: torch.device, transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.surrogates = list(surrogates)
        self.templates = templates  # per surrogate: (K + 1) x D unit rows, the user last
        self.names = names
        self.label = label
        self.scale = scale
        self.transform = transform
        # torchattacks reads its device from the model's first parameter; this empty one carries it.
        self.anchor = torch.nn.Parameter(torch.empty(0, device=device), requires_grad=False)

    @property
    def user_index(self) -> int:
        return len(self.names) - 1

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def forward(self, canvases: torch.Tensor) -> torch.Tensor:
        if self.transform is not None:
            canvases = self.transform(canvases)
        sims = [s.embed(canvases).to(t.device) @ t.T for s, t in zip(self.surrogates, self.templates, strict=True)]
        return self.scale * torch.stack(sims).mean(0)

    def labels(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.label, dtype=torch.long, device=self.device)

    def loss(self, canvases: torch.Tensor, targeted: bool) -> torch.Tensor:
        """Summed cross-entropy to ``label`` to ascend: away from the user, or (targeted) towards the target."""
        ce = F.cross_entropy(self(canvases), self.labels(len(canvases)), reduction="sum")
        return -ce if targeted else ce


class ClassifierMethod(Method):
    """A method that attacks the identity classifier. Subclasses set ``Config`` (a ``ClassifierConfig``)."""

    Config: ClassVar[type] = ClassifierConfig
    needs_gradients: ClassVar[bool] = True

    @property
    def goal(self) -> str:  # type: ignore[override]  # presets differ in goal
        return self.config.goal

    @classmethod
    def describe(cls, **preset: Any) -> dict[str, Any]:
        row = super().describe(**preset)
        # the reference attacks an ImageNet classifier; here every attack sees the recognisers through the adapter
        adapter = ("attacks the identity classifier of methods._classifier (64 x cosine to templates of the run's "
                   "identity bank and the user), not the reference's classifier")
        return {**row, "deviations": [adapter, *row["deviations"]],
                "classifier": "scale x cosine to templates of the identity bank and the user (methods._classifier)"}

    def needs(self) -> list[Need]:
        return [Need("identity_bank", (self.config.bank_identities, self.config.bank_photos))]

    def identity_bank(self) -> IdentityBank:
        """The one place these methods take the identity bank: from the run context they are bound to."""
        return self.context.identity_bank(self.config.bank_identities, self.config.bank_photos)

    def check_surrogates(self, surrogates: list[Target]) -> None:
        if not surrogates:
            raise ValueError(f"{self.name} needs at least one surrogate target; got none")
        blind = [surrogate_name(s) for s in surrogates if not s.differentiable]
        if self.needs_gradients and blind:
            raise ValueError(f"{self.name} needs differentiable surrogates (gradients to the pixels); not: {blind}")

    def classifier(self, photos: torch.Tensor, surrogates: list[Target], seed: int,
                   transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> IdentityClassifier:
        """The classifier for one user: templates of the bank and of the user's fit ``photos``; the label by goal."""
        check_photos(photos, self.name)
        self.check_surrogates(surrogates)
        bank = self.identity_bank()
        device = photos.device
        templates = []
        with torch.no_grad():
            for s in surrogates:
                user = F.normalize(s.embed(photos).mean(0, keepdim=True), dim=1).to(device)
                templates.append(torch.cat([bank.centroids(s, device), user]))
        names = [*bank.names, "user"]
        label = len(bank)
        if self.config.goal == "impersonation":
            label = random.Random(seed).randrange(len(bank))  # the same target on every device
        return IdentityClassifier(surrogates, templates, names, label, self.config.scale, device, transform)

    def base_info(self, model: IdentityClassifier, surrogates: list[Target]) -> dict[str, Any]:
        return {"surrogates": [surrogate_name(s) for s in surrogates], "goal": self.config.goal,
                "label": model.names[model.label], "classes": len(model.names)}


class TorchattacksProtector(Protector):
    """Runs one torchattacks attack on every batch of photos, seeded per batch so a seed fixes the output."""

    def __init__(self, make_attack: Callable[[IdentityClassifier], torchattacks.attack.Attack],
                 model: IdentityClassifier, targeted: bool, seed: int, batch_size: int, info: dict[str, Any],
                 progress: Progress = no_progress):
        self.progress = progress  # the method's: the run shows the batches (torchattacks' own steps are hidden)
        self.make_attack = make_attack
        self.model = model
        self.targeted = targeted
        self.seed = seed
        self.batch_size = batch_size
        self._info = info

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        attack = self.make_attack(self.model)
        if self.targeted:
            attack.set_mode_targeted_by_label(quiet=True)
        out = []
        step = self.progress("protect batches", batch_steps(len(canvases), self.batch_size))
        for i, batch in enumerate(canvases.split(self.batch_size)):
            if hasattr(attack, "seed"):  # APGD and Square reseed torch's RNG from their own field
                attack.seed = self.seed + i
            with seeded(self.seed + i, canvases.device):
                adv = attack(batch.to(self.model.device), self.model.labels(len(batch)))
            out.append(adv.detach().to(canvases.device, canvases.dtype))
            step()
        return torch.cat(out) if out else canvases.clone()

    def info(self) -> dict[str, Any]:
        return dict(self._info)


class TransferAttack(ClassifierMethod):
    """A per-image torchattacks attack on the identity classifier. Subclasses build the attack in ``attack``."""

    kind = "per-image"
    effort: ClassVar[str | None] = "steps"  # one gradient step per iteration (none for single-step FGSM)
    targeted_mode: ClassVar[bool] = True  # whether the torchattacks class has a targeted mode

    def __init__(self, config: Any = None):
        super().__init__(config)
        if self.config.goal == "impersonation" and not self.targeted_mode:
            raise ValueError(f"{type(self).__name__} has no targeted mode: it can only dodge")

    def attack(self, model: IdentityClassifier) -> torchattacks.attack.Attack:
        raise NotImplementedError

    def transform(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A random input transformation the classifier applies (EOT); none by default."""
        return None

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        model = self.classifier(photos, surrogates, seed, self.transform())
        info = {**self.base_info(model, surrogates), "attack": type(self.attack(model)).__name__}
        targeted = self.config.goal == "impersonation"
        return TorchattacksProtector(self.attack, model, targeted, seed, self.config.batch_size, info, self.progress)
