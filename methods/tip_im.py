"""TIP-IM: targeted identity-protection iterative method (Yang et al., ICCV 2021).

Threat model: the protected photos are queries against a recognizer's gallery (probe side); each photo is
protected on its own (per-image) so that it is recognised as some other identity of a candidate target set
rather than as the user. Budget: L-inf ``epsilon`` = 12/255 on the 0..1 scale, T = 100 iterations, step
alpha = 1.5 * epsilon / T; momentum with L1-normalised gradients (MI-FGSM, Dong et al. 2018, mu = 1) and input
diversity (DI, Xie et al. 2019: with probability 0.5 a random down-resize of the canvas to [0.9, 1] of its size
and random zero padding back).

Loss for a target identity t (minimised), per surrogate f with unit embeddings, summed over the ensemble:
  L_t(x') = ||f(x') - c_t||^2 - ||f(x') - f(x)||^2 + gamma * MMD(x', x)
where c_t is the identity's unit centroid and MMD is the squared maximum mean discrepancy between the 16 x 16
patches of x' and of x (Gaussian kernel, bandwidth = median patch distance of x), the paper's naturalness term.

Target selection (the paper's greedy submodular step): every iteration tries one MI-FGSM step towards each
candidate identity and keeps the step with the largest value of the set function
  F(S; x') = mean over surrogates of [max_{s in S} cos(f(x'), c_s) - cos(f(x'), f(x))]
on S = (identities picked so far) + the candidate, i.e. the largest marginal gain of a facility-location
(max-coverage) objective, which is monotone submodular in S; the picked identity joins S. The paper states the
gain as effectiveness (resemblance to the target set) against the user's identity; the exact set function,
gamma and the patch MMD are our reading, documented here. Candidates: ``candidates`` identities of the run's
identity bank (``bench.identity_bank``; TIP-IM draws them from a public face set, we ship none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.context import Need
from bench.identity_bank import IdentityBank
from bench.registry import METHODS
from bench.validate import COUNT, FRACTION, Interval, at_least, check_ranges, positive
from methods._identity_bank import user_features
from methods.base import Method, Protector, seeded_generator
from targets.base import Target


@dataclass
class TIPIMConfig:
    epsilon: float = 12 / 255
    steps: int = 100
    step_size: float | None = None  # None: 1.5 * epsilon / steps
    momentum: float = 1.0
    gamma: float = 1.0  # MMD weight (ours: the sources we have do not state it)
    mmd_patch: int = 16
    diversity_prob: float = 0.5
    diversity_min_scale: float = 0.9
    candidates: int = 10  # target identities tried at every step
    bank_photos: int = 2
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_ranges(self, epsilon=FRACTION, steps=COUNT)
        self.step_size = 1.5 * self.epsilon / self.steps if self.step_size is None else self.step_size
        check_ranges(self, step_size=positive(), candidates=COUNT, gamma=at_least(0),
                     diversity_prob=Interval(0, 1), diversity_min_scale=FRACTION)


def patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """N x P x (3 * size * size) non-overlapping patches."""
    return F.unfold(x, kernel_size=size, stride=size).transpose(1, 2)


def patch_mmd(x: torch.Tensor, clean_patches: torch.Tensor, bandwidth: torch.Tensor, size: int) -> torch.Tensor:
    """Squared MMD (biased estimate, Gaussian kernel) between the patch sets of x and of the clean photo (N,)."""
    p = patches(x, size)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * bandwidth.view(-1, 1, 1) ** 2)).mean((1, 2))

    return k(p, p) + k(clean_patches, clean_patches) - 2 * k(p, clean_patches)


def input_diversity(x: torch.Tensor, prob: float, min_scale: float, gen: torch.Generator) -> torch.Tensor:
    """DI: with probability ``prob``, resize down to a random size and zero-pad back at a random offset."""
    dev = gen.device
    if float(torch.rand((), generator=gen, device=dev)) >= prob:
        return x
    size = x.shape[-1]
    low = max(1, int(size * min_scale))
    new = int(torch.randint(low, size + 1, (), generator=gen, device=dev))
    if new == size:
        return x
    small = F.interpolate(x, size=(new, new), mode="bilinear", align_corners=False, antialias=True)
    left = int(torch.randint(0, size - new + 1, (), generator=gen, device=dev))
    top = int(torch.randint(0, size - new + 1, (), generator=gen, device=dev))
    return F.pad(small, (left, size - new - left, top, size - new - top))


class TIPIMProtector(Protector):
    def __init__(self, config: TIPIMConfig, surrogates: list[Target], seed: int, bank: IdentityBank):
        self.config = config
        self.surrogates = surrogates
        self.seed = seed
        self.bank = bank
        self.picks: torch.Tensor | None = None  # photos x identities: how often each target was picked

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if len(canvases) == 0:
            return canvases.clone()
        gen = seeded_generator(self.seed, canvases.device)
        centroids = [self.bank.centroids(s, canvases.device) for s in self.surrogates]
        out, picks = [], []
        for i in range(0, len(canvases), cfg.batch_size):
            protected, counts = self._protect_batch(canvases[i : i + cfg.batch_size], centroids, gen)
            out.append(protected)
            picks.append(counts)
        self.picks = torch.cat(picks).cpu()
        return torch.cat(out)

    def _protect_batch(self, x: torch.Tensor, centroids: list[torch.Tensor], gen: torch.Generator):
        cfg = self.config
        n, k = len(x), len(self.bank)
        clean = user_features(self.surrogates, x)
        clean_patches = patches(x, cfg.mmd_patch)
        with torch.no_grad():
            bandwidth = torch.cdist(clean_patches, clean_patches).flatten(1).median(1).values.clamp(min=1e-3)
        # candidate-major stacking: row j * n + b is photo b stepping towards identity j
        target_rows = torch.arange(k, device=x.device).repeat_interleave(n)
        tiled_clean = [c.repeat(k, 1) for c in clean]
        tiled_x = x.repeat(k, 1, 1, 1)
        tiled_patches = clean_patches.repeat(k, 1, 1)
        tiled_bw = bandwidth.repeat(k)
        chosen = torch.zeros(n, k, dtype=torch.bool, device=x.device)
        counts = torch.zeros(n, k, dtype=torch.long, device=x.device)
        adv = x.clone()
        grad_mem = torch.zeros_like(x)
        for _ in range(cfg.steps):
            cand_in = adv.repeat(k, 1, 1, 1).requires_grad_(True)
            seen = input_diversity(cand_in, cfg.diversity_prob, cfg.diversity_min_scale, gen)
            loss = cfg.gamma * patch_mmd(cand_in, tiled_patches, tiled_bw, cfg.mmd_patch)
            for s, c, cl in zip(self.surrogates, centroids, tiled_clean, strict=True):
                e = s.embed(seen)
                loss = loss + ((e - c[target_rows]) ** 2).sum(1) - ((e - cl) ** 2).sum(1)
            (grad,) = torch.autograd.grad(loss.sum(), cand_in)
            with torch.no_grad():
                grad = grad / grad.abs().flatten(1).sum(1).clamp(min=1e-12).view(-1, 1, 1, 1)
                mem = cfg.momentum * grad_mem.repeat(k, 1, 1, 1) + grad
                cand = cand_in - cfg.step_size * mem.sign()
                cand = torch.min(torch.max(cand, tiled_x - cfg.epsilon), tiled_x + cfg.epsilon).clamp(0, 1)
                value = self._set_value(cand, centroids, tiled_clean, chosen.repeat(k, 1), target_rows)
                best = value.view(k, n).argmax(0)  # per photo
                rows = best * n + torch.arange(n, device=x.device)
                adv = cand[rows]
                grad_mem = mem[rows]
                chosen[torch.arange(n), best] = True
                counts[torch.arange(n), best] += 1
        return adv, counts

    def _set_value(self, cand: torch.Tensor, centroids: list[torch.Tensor], clean: list[torch.Tensor],
                   chosen: torch.Tensor, target_rows: torch.Tensor) -> torch.Tensor:
        """F(S + {candidate}; x') for every stacked row (rows,)."""
        member = chosen.clone()
        member[torch.arange(len(cand)), target_rows] = True
        value = 0
        for s, c, cl in zip(self.surrogates, centroids, clean, strict=True):
            e = s.embed(cand)
            sims = (e @ c.T).masked_fill(~member, float("-inf"))
            value = value + sims.max(1).values - (e * cl).sum(1)
        return value / len(self.surrogates)

    def info(self) -> dict:
        info = {"bank": self.bank.source, "candidates": self.bank.names}
        if self.picks is not None:
            info["picks_per_identity"] = self.picks.sum(0).tolist()
        return info


@METHODS.register("tip-im")
class TIPIM(Method):
    kind = "per-image"
    Config = TIPIMConfig
    paper = ("Yang et al., Towards Face Encryption by Generating Adversarial Identity Masks (TIP-IM), "
             "ICCV 2021")

    @classmethod
    def describe(cls, **preset) -> dict:
        return {
            **super().describe(**preset),
            "loss": "||f(x') - c_t||^2 - ||f(x') - f(x)||^2 + gamma * MMD; greedy submodular target pick per step",
            "target": "identities of the run's identity bank (bench.identity_bank)",
        }

    def needs(self) -> list[Need]:
        return [Need("identity_bank", (self.config.candidates, self.config.bank_photos))]

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        if not surrogates:
            raise ValueError("tip-im needs at least one differentiable surrogate")
        bank = self.context.identity_bank(self.config.candidates, self.config.bank_photos)
        return TIPIMProtector(self.config, surrogates, seed, bank)
