"""OPOM: one person, one mask; class-wise universal masks built from the user's feature subspace.

Paper: Zhong & Deng, "OPOM: Customized Invisible Cloak towards Face Privacy Protection", IEEE TPAMI 2022.
Reference code: zhongyy/OPOM (``code/generation/attack/privacy.py``: ``FIM`` and ``DFANet_MFIM``;
``gen_privacy_common_softmax.sh`` for the settings). Threat model: query-side; a mask learned on ~10 photos of
a user protects the user's other photos against a recognizer matching them with clean photos.

Defaults are the reference's: L-inf ``epsilon`` = 8/255, ``step`` = 1/255, ``iterations`` = 16. The mask is
1 x 3 x 224 x 224 on the canvas, zero outside the ArcFace face box (the reference's aligned 112 crop).

Update (reference ``FIM``, ``update = "mean-gradient"``, ``start = "per-photo"``): every fit photo keeps its own
adversarial copy, started uniform in +-epsilon. Each iteration takes ONE sign step of the *mean gradient over the
user's photos*: x'_i <- x'_i + step * sign(mean_j g_j) (ascent: the losses are distances to be increased), then
the mask is the mean perturbation eta = clip(mean_i (x'_i - x_i), -eps, eps) and every copy restarts from it,
x'_i = clip(x_i + eta, 0, 1). The fitted mask is the last eta.

Momentum + DFANet (reference ``DFANet_MFIM``, the paper's "DFANet-M" rows, presets ``opom-*-mdfa``: 100
iterations, ``momentum`` = 1, ``dfanet_rate`` = 0.1): a per-photo accumulator G_i <- mu * G_i + g_i / s, where
the reference's scale s is the mean |g| over photos, channels and rows (its loop averages dims 0, 1 and 2 of the
N x C x H x W gradient, leaving one scale per image column); a per-photo sign step x'_i += step * sign(G_i); then
the mean perturbation as above. DFANet (Zhong & Deng, TIFS 2020, as the reference applies it): dropout at
``dfanet_rate`` after every 3 x 3 convolution of the surrogate (``dfanet_layers = "3x3"``), active for the clean
features too, which are re-computed through it every iteration.

Losses, on unit embeddings f, per photo, summed over the surrogate ensemble; F = the user's clean features:
- ``fi-uap``: ||f(x_i') - f(x_i)||^2, away from the photo's own clean feature (FI-UAP);
- ``fi-uap-plus``: minus the mean cosine of f(x_i') to every clean feature of the user (the reference's
  ``eachother_dot``). Its gradient is parallel to ClassCenter's (both push along the mean feature), so under the
  sign rule the two give the same mask: a fact of the reference, kept;
- ``class-center``: ||f(x_i') - mean_j f(x_j)||^2;
- ``affine-hull``: squared distance to the affine hull of F, closed form (residual after projecting f' - mu on the
  span of the centred features; SVD, rank by a 1e-6 relative singular-value cut);
- ``convex-hull``: squared distance to the convex hull of F. The reference warms up with ``hull_warmup`` = 5
  class-centre iterations (weights fixed at 1/N) to push the features outside the hull, then solves min over the
  simplex of ||f' - F^T a||^2, here by ``hull_steps`` projected-gradient steps (step 1 / Lipschitz), and uses
  ||f' - F^T a*||^2 with a* held fixed (the reference detaches its weights too).

Variants of our own, registered apart (``opom-*-signavg``): the rule this project used before it was compared
with the reference: one shared mask started uniform in +-step, stepped by the *mean of the per-photo signs*
(mask <- clip(mask + step * mean_i sign(g_i))), FI-UAP+ as the mean (non-squared) distance to the user's clean
features, no hull warm-up, and feature dropout at every Conv2d. The sign average cancels where photos disagree:
on LFW with the SFace surrogate the mask used about half its amplitude and protected far less.

What still differs from the reference is listed in the class's ``deviations`` (shown by `bench list methods --json`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from bench.api import COUNT, FRACTION, METHODS, Interval, Target, at_least, check_ranges, positive
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

LOSSES = ("fi-uap", "fi-uap-plus", "class-center", "affine-hull", "convex-hull")
UPDATES = ("mean-gradient", "sign-average")
STARTS = ("per-photo", "mask")
PLUS_FORMS = ("mean-cosine", "mean-distance")
DROPOUT_LAYERS = ("3x3", "all")


@dataclass
class OPOMConfig:
    loss: str = "convex-hull"
    epsilon: float = 8 / 255
    step: float = 1 / 255
    iterations: int = 16
    update: str = "mean-gradient"  # reference FIM; "sign-average": ours before (mean of per-photo signs)
    start: str = "per-photo"  # per-photo copies uniform in +-epsilon (reference); "mask": one mask in +-step
    momentum: float = 0.0  # mu of the per-photo accumulator; the reference's DFANet-M runs use 1
    dfanet_rate: float = 0.0  # dropout after surrogate convolutions; the reference's DFANet-M runs use 0.1
    dfanet_layers: str = "3x3"  # reference: after each 3 x 3 convolution; "all": every Conv2d (ours before)
    fi_uap_plus: str = "mean-cosine"  # reference; "mean-distance": mean non-squared distance (ours before)
    hull_warmup: int = 5  # convex-hull: first iterations with class-centre weights (the reference's nter=5)
    hull_steps: int = 50
    batch_size: int = 16
    region: str = "face-box"

    def __post_init__(self) -> None:
        for key, allowed in (("loss", LOSSES), ("update", UPDATES), ("start", STARTS),
                             ("fi_uap_plus", PLUS_FORMS), ("dfanet_layers", DROPOUT_LAYERS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"opom {key} must be one of {allowed}, got {getattr(self, key)!r}")
        check_ranges(self, epsilon=FRACTION, step=positive(), iterations=COUNT, batch_size=COUNT,
                     momentum=at_least(0), dfanet_rate=Interval(0, 1, high_open=True), hull_steps=COUNT,
                     hull_warmup=at_least(0, whole=True))
        if self.update == "sign-average" and self.start == "per-photo":
            raise ValueError("opom update 'sign-average' steps one shared mask: use start = 'mask' with it")
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
    loss: str, protected: torch.Tensor, own: torch.Tensor, user: torch.Tensor, hull_steps: int,
    plus_form: str = "mean-cosine", hull: bool = True,
) -> torch.Tensor:
    """Per-photo distance (N,) of protected features from the user's clean feature subspace (to be increased).

    ``hull = False`` makes ``convex-hull`` use the class-centre weights (the reference's warm-up iterations).
    """
    if loss == "fi-uap":
        return ((protected - own) ** 2).sum(1)
    if loss == "fi-uap-plus":
        if plus_form == "mean-cosine":
            return -(protected @ user.T).mean(1)
        return torch.cdist(protected, user).mean(1)
    if loss == "class-center" or (loss == "convex-hull" and not hull):
        return ((protected - user.mean(0, keepdim=True)) ** 2).sum(1)
    if loss == "affine-hull":
        return (affine_hull_residual(protected, user) ** 2).sum(1)
    weights = convex_hull_weights(protected.detach(), user, hull_steps)
    return ((protected - weights @ user) ** 2).sum(1)


def column_scale(grad: torch.Tensor) -> torch.Tensor:
    """The reference momentum's normaliser: mean |grad| over photos, channels and rows (1 x 1 x 1 x W)."""
    return grad.abs().mean(dim=(0, 1, 2), keepdim=True).clamp_min(1e-12)


PAPER = "Zhong & Deng, OPOM: Customized Invisible Cloak towards Face Privacy Protection, IEEE TPAMI 2022"
SIGNAVG = {"update": "sign-average", "start": "mask", "fi_uap_plus": "mean-distance", "hull_warmup": 0,
           "dfanet_layers": "all"}
MDFA = {"iterations": 100, "momentum": 1.0, "dfanet_rate": 0.1}


def _register_variants(cls: type) -> type:
    for loss in LOSSES:
        METHODS.register(f"opom-{loss}", loss=loss)(cls)
        METHODS.register(f"opom-{loss}-mdfa", loss=loss, **MDFA)(cls)
        METHODS.register(f"opom-{loss}-signavg", loss=loss, **SIGNAVG)(cls)
    return cls


@_register_variants
class OPOM(Method):
    kind = "universal"
    Config = OPOMConfig
    effort = "iterations"
    paper = PAPER
    reference = "https://github.com/zhongyy/OPOM (code/generation/attack/privacy.py: FIM, DFANet_MFIM)"
    deviations = (
        "mask at canvas resolution: 140 x 140 canvas pixels over the reference's 112 x 112 crop (1.25 canvas "
        "pixels per crop pixel), so a sign step moves more pixels",
        "surrogates are this project's targets (unit embeddings, each with its own framing), not the "
        "reference's IR-50 Softmax/ArcFace/CosFace trained on CASIA-WebFace",
        "convex hull solved by projected gradient (hull_steps) instead of cvxpy; affine hull in closed form",
        "DFANet on a non-IR-50 surrogate: dropout after each of its 3 x 3 convolutions (depthwise ones "
        "included), the reference's rule for IR-50; on the TF.js graph ports (faceres, faceres-deep, "
        "mobileface ...) batch norm is folded into each convolution and its activation fused, so the dropout "
        "falls after them, where the reference drops the convolution's output before batch norm",
        "fit photos: the run's fit split (Chameleon's 70% by default), not exactly 10 photos per identity",
        "with several surrogates the losses are summed before the sign step (the reference has one surrogate), "
        "so where the surrogates' gradients disagree the largest one sets the sign",
    )

    @classmethod
    def describe(cls, **preset) -> dict:
        row = super().describe(**preset)
        cfg = OPOMConfig(**preset)
        if cfg.update == "sign-average":
            row["deviations"] = [
                "OUR VARIANT, not the reference: one shared mask started in +-step, stepped by the mean of "
                "per-photo signs; FI-UAP+ as mean distance; no hull warm-up; dropout at every Conv2d",
                *row["deviations"],
            ]
        return {**row, "loss": cfg.loss}

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        cfg = self.config
        check_photos(photos, "opom")
        check_surrogates(surrogates, "opom")
        gen = seeded_generator(seed, photos.device)
        support = region_support(photos, cfg.region)
        clean = clean_embeddings(surrogates, photos)
        if cfg.start == "mask":
            mask = uniform_start(photos, cfg.step, support, gen)
            adv = apply_mask(photos, mask)
        else:
            noise = torch.rand(photos.shape, generator=gen, device=photos.device, dtype=photos.dtype)
            adv = photos + (noise * 2 - 1) * cfg.epsilon * support
            mask = torch.zeros(1, *photos.shape[1:], device=photos.device, dtype=photos.dtype)
        accum = torch.zeros_like(photos)
        tick = self.progress("fit", cfg.iterations)
        for it in range(cfg.iterations):
            tick()
            with self._dropout(surrogates, gen):
                if cfg.dfanet_rate > 0:  # the reference's clean features go through the same dropout
                    clean = clean_embeddings(surrogates, photos)
                grad = self._gradient(adv, clean, surrogates, hull=it >= cfg.hull_warmup)
            with torch.no_grad():
                if cfg.momentum > 0:
                    accum = cfg.momentum * accum + grad / (
                        column_scale(grad) if cfg.update == "mean-gradient"
                        else grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1, 1))
                    grad = accum
                if cfg.update == "sign-average":
                    mask = project(mask + cfg.step * grad.sign().mean(0, keepdim=True), cfg.epsilon, support)
                    adv = apply_mask(photos, mask)
                    continue
                direction = grad.sign() if cfg.momentum > 0 else grad.mean(0, keepdim=True).sign()
                adv = adv + cfg.step * direction * support
                mask = project((adv - photos).mean(0, keepdim=True), cfg.epsilon, support)
                adv = apply_mask(photos, mask)
        info = {
            "loss": cfg.loss,
            "update": cfg.update,
            "surrogates": [surrogate_name(s) for s in surrogates],
            "fit_photos": len(photos),
            "momentum": cfg.momentum,
            "dfanet_rate": cfg.dfanet_rate,
            "mask_linf": float(mask.abs().max()),
        }
        return MaskProtector(mask, info)

    @contextmanager
    def _dropout(self, surrogates: list[Target], gen: torch.Generator):
        cfg = self.config
        kernel = (3, 3) if cfg.dfanet_layers == "3x3" else None
        with feature_dropout(surrogates, cfg.dfanet_rate, gen, kernel=kernel):
            yield

    def _gradient(self, adv: torch.Tensor, clean: list[torch.Tensor], surrogates: list[Target], hull: bool):
        """d(loss_i)/d(x'_i) for every photo (N x 3 x S x S), in batches."""
        cfg = self.config
        grads = []
        for i in range(0, len(adv), cfg.batch_size):
            x = adv[i : i + cfg.batch_size].clone().requires_grad_(True)
            dist = sum(
                subspace_distance(cfg.loss, s.embed(x), c[i : i + cfg.batch_size], c, cfg.hull_steps,
                                  cfg.fi_uap_plus, hull)
                for s, c in zip(surrogates, clean, strict=True)
            )
            grads.append(torch.autograd.grad(dist.sum(), x)[0])
        return torch.cat(grads)
