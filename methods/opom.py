"""OPOM: one person, one mask; class-wise universal masks built from the user's feature subspace.

Paper: Zhong & Deng, "OPOM: Customized Invisible Cloak towards Face Privacy Protection", IEEE TPAMI 2022.
Threat model: query-side; a mask learned on ~10 photos of a user protects the user's other photos against an
unauthorized recognizer matching them with a clean gallery. Budget: L-inf ``epsilon`` = 8/255 on the 0..1 scale,
``step`` = 1/255, ``iterations`` = 16 (the paper runs 100 with momentum + DFANet). Mask: 1 x 3 x 224 x 224 on
the canvas, zero outside the ArcFace face box by default (OPOM works on aligned 112 crops, which that box is).

Update (the mask is the batch mean perturbation): every photo takes its own sign step from the current mask and
the mask becomes the mean of those per-photo perturbations, clamped to epsilon, i.e.
mask <- clip(mask + step * mean_i sign(g_i), -eps, eps) with g_i the gradient of photo i's loss (ascent: the
losses are distances to be increased). With ``momentum`` > 0 each photo keeps an MI-FGSM accumulator
g_i <- mu * g_i + grad_i / ||grad_i||_1. With ``dfanet_rate`` > 0 every forward pass drops Conv2d outputs of the
surrogates at that rate (DFANet, Zhong & Deng, TIFS 2020: feature dropout as an implicit ensemble). DFANet drops
features of selected layers; we drop at *every* Conv2d of the surrogate (the only layer choice that works for any
torch target), which compounds: on SFace (27 convolutions) a rate of 0.1 left the mask useless (40 momentum
iterations on one LFW user: mean held-out cosine to the clean photo 0.90, against 0.61 without dropout), while
0.02 kept it working (0.55). Use rates of about 0.02 with this implementation. The start is uniform in +-step: the
FI-UAP distance has zero slope at the clean image.

Losses, on unit embeddings f (per photo, summed over the surrogate ensemble), with F = the user's clean
features {f(x_j)} under that surrogate:
- ``fi-uap``: ||f(x_i') - f(x_i)||^2, away from the photo's own clean feature (FI-UAP of Zhong & Deng 2020);
- ``fi-uap-plus``: mean_j ||f(x_i') - f(x_j)||, away from every clean feature of the user (non-squared, which
  keeps it from collapsing to the class-centre loss; our reading of the paper's FI-UAP+);
- ``class-center``: ||f(x_i') - mean_j f(x_j)||^2;
- ``affine-hull``: squared distance to the affine hull of F, closed form: residual of f' - mu after projecting on
  the span of the centred features (SVD, rank by a 1e-6 relative singular-value cut);
- ``convex-hull``: squared distance to the convex hull of F: min over the simplex of ||f' - F^T a||^2 solved by
  ``hull_steps`` projected-gradient steps (step 1 / Lipschitz, Euclidean projection on the simplex), then
  ||f' - F^T a*||^2 with a* held fixed (the envelope theorem gives the same gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.registry import METHODS
from bench.validate import COUNT, FRACTION, Interval, at_least, check_ranges, positive
from methods._universal import (
    apply_mask,
    check_photos,
    check_region,
    check_surrogates,
    clean_embeddings,
    feature_dropout,
    project,
    region_support,
    surrogate_name,
    uniform_start,
)
from methods.base import MaskProtector, Method, Protector, seeded_generator
from targets.base import Target

LOSSES = ("fi-uap", "fi-uap-plus", "class-center", "affine-hull", "convex-hull")


@dataclass
class OPOMConfig:
    loss: str = "convex-hull"
    epsilon: float = 8 / 255
    step: float = 1 / 255
    iterations: int = 16
    momentum: float = 0.0  # MI-FGSM decay mu; 0 = plain sign steps (the paper's 100-iteration runs use 1.0)
    dfanet_rate: float = 0.0  # dropout rate at every surrogate Conv2d; 0 = off, ~0.02 works (see above)
    hull_steps: int = 50
    batch_size: int = 16
    region: str = "face-box"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"opom loss must be one of {LOSSES}, got {self.loss!r}")
        check_ranges(self, epsilon=FRACTION, step=positive(), iterations=COUNT, batch_size=COUNT,
                     momentum=at_least(0), dfanet_rate=Interval(0, 1, high_open=True), hull_steps=COUNT)
        check_region(self.region)


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row of v onto the probability simplex (sort-based, Duchi et al. 2008)."""
    n = v.shape[1]
    u, _ = torch.sort(v, dim=1, descending=True)
    css = u.cumsum(1) - 1
    ks = torch.arange(1, n + 1, device=v.device, dtype=v.dtype)
    rho = ((u - css / ks) > 0).to(v.dtype).mul(ks).argmax(1, keepdim=True)
    theta = css.gather(1, rho) / (rho + 1).to(v.dtype)
    return (v - theta).clamp_min(0)


def convex_hull_weights(points: torch.Tensor, features: torch.Tensor, steps: int) -> torch.Tensor:
    """argmin over the simplex of ||p - F^T a||^2 for each row p of ``points`` (projected gradient)."""
    gram = features @ features.T
    lipschitz = 2 * torch.linalg.matrix_norm(gram, ord=2).clamp_min(1e-12)
    a = torch.full((len(points), len(features)), 1 / len(features), device=points.device, dtype=points.dtype)
    target = points @ features.T
    for _ in range(steps):
        grad = 2 * (a @ gram - target)
        a = project_simplex(a - grad / lipschitz)
    return a


def affine_hull_residual(points: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """points minus their projection on the affine hull of the rows of ``features``."""
    mu = features.mean(0, keepdim=True)
    centred = features - mu
    if len(features) < 2:
        return points - mu
    _, sv, vt = torch.linalg.svd(centred, full_matrices=False)
    basis = vt[sv > 1e-6 * sv.max().clamp_min(1e-12)]
    rel = points - mu
    return rel - (rel @ basis.T) @ basis


def subspace_distance(
    loss: str, protected: torch.Tensor, own: torch.Tensor, user: torch.Tensor, hull_steps: int
):
    """Per-photo distance (N,) of protected features from the user's clean feature subspace (to be increased)."""
    if loss == "fi-uap":
        return ((protected - own) ** 2).sum(1)
    if loss == "fi-uap-plus":
        return torch.cdist(protected, user).mean(1)
    if loss == "class-center":
        return ((protected - user.mean(0, keepdim=True)) ** 2).sum(1)
    if loss == "affine-hull":
        return (affine_hull_residual(protected, user) ** 2).sum(1)
    weights = convex_hull_weights(protected.detach(), user, hull_steps)
    return ((protected - weights @ user) ** 2).sum(1)


@METHODS.register("opom-fi-uap", loss="fi-uap")
@METHODS.register("opom-fi-uap-plus", loss="fi-uap-plus")
@METHODS.register("opom-class-center", loss="class-center")
@METHODS.register("opom-affine-hull", loss="affine-hull")
@METHODS.register("opom-convex-hull", loss="convex-hull")
class OPOM(Method):
    kind = "universal"
    Config = OPOMConfig
    paper = "Zhong & Deng, OPOM: Customized Invisible Cloak towards Face Privacy Protection, IEEE TPAMI 2022"

    @classmethod
    def describe(cls, **preset) -> dict:
        return {**super().describe(**preset), "loss": preset.get("loss", OPOMConfig.loss)}

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        cfg = self.config
        check_photos(photos, "opom")
        check_surrogates(surrogates, "opom")
        gen = seeded_generator(seed, photos.device)
        support = region_support(photos, cfg.region)
        clean = clean_embeddings(surrogates, photos)
        mask = uniform_start(photos, cfg.step, support, gen)
        accum = torch.zeros_like(photos)
        for _ in range(cfg.iterations):
            grads = []
            with feature_dropout(surrogates, cfg.dfanet_rate, gen):
                for i in range(0, len(photos), cfg.batch_size):
                    x = photos[i : i + cfg.batch_size].clone().requires_grad_(True)
                    protected = apply_mask(x, mask)
                    dist = sum(
                        subspace_distance(
                            cfg.loss, s.embed(protected), c[i : i + cfg.batch_size], c, cfg.hull_steps
                        )
                        for s, c in zip(surrogates, clean, strict=True)
                    )
                    grads.append(torch.autograd.grad(dist.sum(), x)[0])
            grad = torch.cat(grads)
            if cfg.momentum > 0:
                accum = cfg.momentum * accum + grad / grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(
                    -1, 1, 1, 1
                )
                grad = accum
            with torch.no_grad():
                mask = project(mask + cfg.step * grad.sign().mean(0, keepdim=True), cfg.epsilon, support)
        info = {
            "loss": cfg.loss,
            "surrogates": [surrogate_name(s) for s in surrogates],
            "fit_photos": len(photos),
            "momentum": cfg.momentum,
            "dfanet_rate": cfg.dfanet_rate,
        }
        return MaskProtector(mask, info)
