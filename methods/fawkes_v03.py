"""Fawkes' targeted rule (the paper, Shan et al., USENIX Security 2020, and the pre-1.0 code): the rule this
project ran as ``fawkes`` before it followed v1.0 (``methods/fawkes.py``), kept as ``fawkes-v03-*``.

Each photo is cloaked towards a *target identity*: among candidate identities, those whose features are farthest
from the user's (the smallest distance to any user photo, sorted descending), one is drawn at random from the
20 farthest (v0.3.1 ``utils.py: select_target_label``), and every user photo is paired with a random photo of
that identity. Candidates come from the run's identity bank (``bench.run.identity_bank``: people of the run's data
with the fewest photos, never an evaluated user; Fawkes bundles a public set).

Loss per photo x with target photo t, surrogate ensemble f_m (the paper's form, also v1.0's ``maximize=False``
branch, which v1.0 never runs):
  loss = c * max(DSSIM(x', x) - budget, 0)^2 + 1000 * sum_m ||f_m(x') - f_m(t)|| / ||f_m(t)||
in tanh space (``methods._fawkes_core``) with Adadelta, c = 1e6 and v1.0's mode table. The kept result is the
iterate with the smallest feature loss among those with DSSIM <= 1.1 * budget; because the bound is then
enforced strictly, both that pick and the final iterate are shrunk (bisection on the perturbation's scale) until
DSSIM <= budget on the face box and on the whole canvas, and the one closer to the target is kept.

What differs from the pre-1.0 code is listed in the class's ``deviations`` (`bench list methods --json`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.api import METHODS, IdentityBank, Need, Target
from methods._fawkes_core import CloakConfig, TanhImage, face_dssim, shrink_to_dssim, worst_dssim
from methods._identity_bank import farthest_identities, user_features
from methods.base import Budget, Method, Progress, Protector, Step, batch_steps, no_progress, seeded_generator


@dataclass
class FawkesV03Config(CloakConfig):
    feature_weight: float = 1000.0
    farthest: int = 20  # draw the target among this many farthest candidates
    bank_identities: int = 40
    bank_photos: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.farthest < 1 or self.farthest > self.bank_identities:
            raise ValueError("fawkes needs 1 <= farthest <= bank_identities")


def feature_distance(
    surrogates: list[Target], x: torch.Tensor, targets: list[torch.Tensor]
) -> torch.Tensor:
    """sum over the ensemble of ||f(x') - f(t)|| / ||f(t)|| per photo (N,)."""
    total = 0
    for s, t in zip(surrogates, targets, strict=True):
        total = total + (s.embed(x) - t).norm(dim=1) / t.norm(dim=1)
    return total


class FawkesV03Protector(Protector):
    def __init__(self, config: FawkesV03Config, surrogates: list[Target], seed: int, bank: IdentityBank,
                 user: list[torch.Tensor] | None, progress: Progress = no_progress):
        self.config = config
        self.surrogates = surrogates
        self.seed = seed
        self.bank = bank
        self.user = user
        self.progress = progress  # the method's: the run shows the steps
        self.target_identity: int | None = None
        self.last_dssim: torch.Tensor | None = None

    def _choose_target(self, canvases: torch.Tensor, gen: torch.Generator) -> int:
        user = self.user if self.user is not None else user_features(self.surrogates, canvases)
        order = farthest_identities(self.bank, self.surrogates, user, canvases.device)
        pick = torch.randint(self.config.farthest, (1,), generator=gen, device=gen.device)
        return int(order[int(pick)])

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if len(canvases) == 0:
            return canvases.clone()
        gen = seeded_generator(self.seed, canvases.device)
        self.target_identity = self._choose_target(canvases, gen)
        target_photos = self.bank.photos_of(self.target_identity).to(canvases.device)
        pairing = torch.randint(len(target_photos), (len(canvases),), generator=gen, device=gen.device)
        out, dssims = [], []
        done = self.progress("protect", batch_steps(len(canvases), cfg.batch_size, cfg.steps))
        for i in range(0, len(canvases), cfg.batch_size):
            x = canvases[i : i + cfg.batch_size]
            t = target_photos[pairing[i : i + cfg.batch_size].to(canvases.device)]
            protected = self._cloak(x, t, gen, done)
            out.append(protected)
            dssims.append(worst_dssim(protected, x))
        self.last_dssim = torch.cat(dssims).cpu()
        return torch.cat(out)

    def _cloak(self, x: torch.Tensor, target_photos: torch.Tensor, gen: torch.Generator, done: Step) -> torch.Tensor:
        cfg = self.config
        with torch.no_grad():
            target_feats = [s.embed(target_photos) for s in self.surrogates]
        image = TanhImage(x, cfg, gen)
        best = x.clone()
        best_feat = torch.full((len(x),), float("inf"), device=x.device)
        for step in range(cfg.steps):
            cloaked = image()
            dist = face_dssim(cloaked, x)
            feat = feature_distance(self.surrogates, cloaked, target_feats)
            loss = cfg.penalty * (dist - cfg.dssim_budget).clamp(min=0) ** 2 + cfg.feature_weight * feat
            image.step(loss.sum())
            if step == 0 and cfg.first_step_kick:
                image.kick(cfg.first_step_kick)
            with torch.no_grad():
                # v1.0 keeps the image this iteration's loss was computed on
                better = (dist <= 1.1 * cfg.dssim_budget) & (feat < best_feat)
                best[better] = cloaked.detach()[better]
                best_feat = torch.where(better, feat.detach(), best_feat)
            done()
        # Shrink both v1.0's pick and the last iterate into the strict bound; keep the closer to the target.
        candidates = [shrink_to_dssim(c, x, cfg.dssim_budget, cfg.bisection_steps) for c in (best, image())]
        with torch.no_grad():
            dists = [feature_distance(self.surrogates, c, target_feats) for c in candidates]
        return torch.where((dists[0] <= dists[1]).view(-1, 1, 1, 1), candidates[0], candidates[1])

    def info(self) -> dict:
        info = {"bank": self.bank.source, "mode": self.config.mode, "dssim_budget": self.config.dssim_budget}
        if self.target_identity is not None:
            info["target_identity"] = self.bank.names[self.target_identity]
        if self.last_dssim is not None:
            info["dssim"] = [round(v, 6) for v in self.last_dssim.tolist()]
        return info


@METHODS.register("fawkes-v03")
@METHODS.register("fawkes-v03-low", mode="low")
@METHODS.register("fawkes-v03-mid", mode="mid")
@METHODS.register("fawkes-v03-high", mode="high")
class FawkesV03(Method):
    kind = "per-image"
    Config = FawkesV03Config
    effort = "steps"
    paper = "Shan et al., Fawkes: Protecting Privacy against Unauthorized Deep Learning Models, USENIX Security 2020"
    reference = ("https://github.com/Shawn-Shan/fawkes v0.3.1 (commit 63ba2f9, before '1.0 beta update'): "
                 "fawkes/differentiator.py, fawkes/protection.py, fawkes/utils.py select_target_label")
    deviations = (
        "OUR VARIANT: the paper's targeted loss with v1.0's settings; the project's `fawkes` before it followed "
        "v1.0's untargeted rule",
        "modes take v1.0's table (low / mid / high = DSSIM 0.004 / 0.012 / 0.017, 40 / 75 / 150 steps, lr 25 / 20 "
        "/ 15, c = 1e6), not v0.3.1's (min / low / mid / high / ultra = DSSIM 0.002 / 0.003 / 0.005 / 0.008 / "
        "0.01, 20 to 1000 steps, lr 40 to 8, c = 1e9)",
        "the feature goal is each target photo's own feature; v0.3.1 aims at the clean feature pushed twice the "
        "way from the user's feature centre to the target's (original + 2 (target centre - original centre))",
        "feature loss weighted 1000 (v1.0's dead targeted branch); v0.3.1 adds it unweighted",
        "the iterate kept is the closest to the target among those with DSSIM <= 1.1 x budget, then shrunk "
        "(bisection) until DSSIM <= budget on the face box and the whole canvas; v0.3.1 keeps the closest iterate "
        "whatever its DSSIM, starts the modifier at 1e-6 (not uniform in +-1e-4), has no +-15/255 clip, no "
        "first-step kick and decays the learning rate by 0.8 every "
        "third of the steps",
        "STAND-IN: candidate target identities from the run's identity bank (LFW people with the fewest photos) "
        "instead of the public identity set Fawkes bundles",
        "surrogates are this project's targets (every mode uses all of the suite's surrogates), not Fawkes' own "
        "feature extractor; DSSIM on the canvas face box (140 px, ArcFace-aligned; only the box perturbed) where "
        "v0.3.1 measures its 224 px MTCNN crop",
    )

    @classmethod
    def describe(cls, **preset) -> dict:
        cfg = FawkesV03Config(**preset)
        return {
            **super().describe(**preset),
            "loss": "c * DSSIM hinge^2 + 1000 * ||f(x') - f(target)|| / ||f(target)||, Adadelta in tanh space",
            "target": f"one of the {cfg.farthest} farthest of {cfg.bank_identities} bank identities",
        }

    def needs(self) -> list[Need]:
        return [Need("identity_bank", (self.config.bank_identities, self.config.bank_photos))]

    def budget(self) -> Budget:
        return Budget(linf=self.config.max_change, dssim=self.config.dssim_budget)

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        if not surrogates:
            raise ValueError("fawkes needs at least one differentiable surrogate")
        bank = self.context.identity_bank(self.config.bank_identities, self.config.bank_photos)
        if self.config.farthest > len(bank):
            raise ValueError(f"fawkes draws among {self.config.farthest} farthest, the bank holds {len(bank)}")
        user = user_features(surrogates, photos) if len(photos) else None
        return FawkesV03Protector(self.config, surrogates, seed, bank, user, self.progress)
