"""Region patches: adversarial eyeglass frames (``adv-glasses``) and a forehead sticker (``adv-hat``).

One patch per user, fitted on the user's fit photos and worn in every photo (kind "universal": the aligned canvas
puts the region on the same part of every face). Inside the region the colours are free in [0, 1] and replace the
photo; outside nothing changes. Budget: the region's area (``methods._regions``), not a norm: ``linf`` is not
declared, ``area`` is the share of the 224 canvas the region covers, and the harness checks that no more changes.

``adv-glasses`` / ``adv-glasses-impersonation``: Sharif et al., "Accessorize to a Crime: Real and Stealthy Attacks
on State-of-the-Art Face Recognition", ACM CCS 2016, as the authors' code (mahmoods01/accessorize-to-a-crime,
``aux/attack/dodge.m`` / ``impersonate.m``) runs it, at its digital scripts' settings (``digital_dodging.m``,
``digital_impersonation.m``: no total variation, no printability term) but on all the fit photos at once, as its
physical scripts do, on the identity classifier of ``methods._classifier``. Start: the best of five solid colours (grey, orange, brown, gold,
yellow: the lowest mean probability of the user, or the highest of the target). Each iteration, for every fit
photo wearing the frames: the gradient of the softmax loss at the user's label (ascended for dodging; at the
target's label, descended, for impersonation) and that of the total variation, each kept inside the region and
divided by its largest absolute value; the photo's step ``step / n * gradient - tv_weight / n * tv`` (n photos)
joins its own momentum (``momentum`` times the previous one plus the new step); every photo's step is added in
turn, each component that would leave [0, 1] dropped, and the colours rounded down to 8 bits. It stops after
``iterations`` or once the mean probability of the user falls below ``stop_probability`` (dodging; of the target
above it, impersonation). Defaults: step 20/255, tv_weight 0, momentum 0.4, 300 iterations, stop at 0.01 / 0.95.

``adv-hat``: Komkov & Petiushko, "AdvHat: Real-World Adversarial Attack on ArcFace Face ID System", ICPR 2020, as
the authors' code (papermsucode/advhat, ``Attack/attack.py``) runs it: the sticker starts grey (127/255) and
descends the cosine between the embedding of the photos wearing it and the user's clean embedding (the mean over
surrogates of each one's cosine to the unit mean embedding of the fit photos), plus ``tv_weight`` times the
sticker's total variation (sum of sqrt(dx^2 + dy^2 + 1e-5)), by signed momentum steps: ``step`` 1/51 with momentum
0.9 until the slope of the last 100 losses (least squares) stops being negative after at least 100 steps, then
1/255 with momentum 0.995 until it stops again after at least 200 more (or ``iterations`` in all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bench.api import METHODS, Target
from methods._classifier import ClassifierConfig, ClassifierMethod, IdentityClassifier
from methods._regions import region_area, region_map
from methods._universal import check_photos, check_surrogates, surrogate_name
from methods.base import Budget, Method, Protector

# the reference's starting colours (0..255): grey, orangish, brownish, goldish, yellowish
START_COLOURS = ((128, 128, 128), (220, 130, 0), (160, 105, 55), (200, 175, 30), (220, 210, 50))


def paste(canvases: torch.Tensor, patch: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    return canvases * (1 - region) + patch * region


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of sqrt(dx^2 + dy^2 + 1e-5), the smoothness term of both papers (dx, dy: forward
    differences, zero on the last column and row)."""
    dx = F.pad(images[..., :, 1:] - images[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(images[..., 1:, :] - images[..., :-1, :], (0, 0, 0, 1))
    return (dx.square() + dy.square() + 1e-5).sqrt().sum()


def _unit_max(g: torch.Tensor) -> torch.Tensor:
    """Each photo's gradient divided by its largest absolute value (zero stays zero)."""
    return g / g.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)


def _quantise(patch: torch.Tensor) -> torch.Tensor:
    return torch.floor(patch * 255 + 1e-4) / 255


def softmax_loss(model: IdentityClassifier, images: torch.Tensor, targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per photo: the loss whose gradient the step follows (to ascend), and the probability of the label.

    Dodging ascends -log p(user) written as logsumexp(other logits) - user logit: per photo a positive multiple of
    the softmax loss's gradient (the same direction once divided by its largest value), which stays finite where
    p(user) rounds to 1 in float32 and the softmax loss's own gradient underflows to zero."""
    logits = model(images)
    label = model.label
    prob = logits.softmax(1)[:, label]
    if targeted:
        return -F.cross_entropy(logits, model.labels(len(images)), reduction="none"), prob
    others = torch.cat([logits[:, :label], logits[:, label + 1:]], 1)
    return torch.logsumexp(others, 1) - logits[:, label], prob


class PatchProtector(Protector):
    """Pastes the fitted patch into the region; the photo under it is gone, so there is no key."""

    def __init__(self, patch: torch.Tensor, region: torch.Tensor, info: dict[str, Any]):
        self.patch = patch.detach()
        self.region = region
        self._info = info

    def protect(self, canvases: torch.Tensor) -> torch.Tensor:
        return paste(canvases, self.patch.to(canvases.device), self.region.to(canvases.device))

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def state(self) -> dict[str, torch.Tensor]:
        return {"patch": (self.patch * self.region).cpu(), "region": self.region.cpu()}


class RegionMethod(Method):
    """What both patches share: the budget (the region's area) and no key."""

    kind = "universal"
    effort = "iterations"

    def budget(self) -> Budget:
        return Budget(area=region_area(self.config.region), note=f"colours unbounded in the {self.config.region}")

    @property
    def holds_key(self) -> bool:
        return False  # a pasted patch replaces the pixels under it: there is nothing to subtract


def _check_region(config: Any) -> None:
    region_map(config.region, 8)  # validates the name
    if config.iterations < 1 or config.step <= 0 or config.tv_weight < 0 or not 0 <= config.momentum < 1:
        raise ValueError("region patches need iterations >= 1, step > 0, tv_weight >= 0, 0 <= momentum < 1")


@dataclass
class AdvGlassesConfig(ClassifierConfig):
    region: str = "eyeglass-frame"
    iterations: int = 300
    step: float = 20 / 255  # per iteration, shared among the fit photos
    tv_weight: float = 0.0  # the digital scripts' lambda_tv (the physical ones: 3 on 0..255, i.e. 3/255)
    momentum: float = 0.4
    stop_probability: float | None = None  # None: 0.01 (dodging) or 0.95 (impersonation), the reference's

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_region(self)
        if self.stop_probability is not None and not 0 <= self.stop_probability <= 1:
            raise ValueError(f"stop_probability must lie in [0, 1], got {self.stop_probability}")


@METHODS.register("adv-glasses")
@METHODS.register("adv-glasses-impersonation", goal="impersonation")
class AdvGlasses(RegionMethod, ClassifierMethod):
    Config = AdvGlassesConfig
    paper = ("Sharif et al., Accessorize to a Crime: Real and Stealthy Attacks on State-of-the-Art Face "
             "Recognition, ACM CCS 2016")
    reference = ("github.com/mahmoods01/accessorize-to-a-crime (aux/attack/dodge.m, impersonate.m at the settings of "
                 "digital_dodging.m, digital_impersonation.m)")
    deviations: ClassVar[tuple[str, ...]] = (
        "digital only: the digital scripts' settings (no total variation, no non-printability term) on all the "
        "fit photos at once, as the physical scripts fit theirs (those weigh total variation 3 and printability 5 "
        "and shift and rotate the frames at random); a fixed region on the aligned canvas, not the authors' "
        "silhouette",
        "the softmax loss at the user's label is ascended as logsumexp(other logits) - user logit: per photo the "
        "same direction once divided by its largest value, but finite where the user's probability rounds to 1",
    )

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        c = self.config
        model = self.classifier(photos, surrogates, seed)
        targeted = c.goal == "impersonation"
        stop = c.stop_probability if c.stop_probability is not None else (0.95 if targeted else 0.01)
        region = region_map(c.region, photos.shape[-1]).to(photos.device, photos.dtype)
        n = len(photos)

        def probability(patch: torch.Tensor) -> float:
            with torch.no_grad():
                return float(torch.cat([softmax_loss(model, paste(b, patch, region), targeted)[1]
                                        for b in photos.split(c.batch_size)]).mean())

        starts = [torch.tensor(rgb, dtype=photos.dtype, device=photos.device).view(1, 3, 1, 1).expand(
            1, 3, *photos.shape[-2:]) / 255 for rgb in START_COLOURS]
        scores = [probability(s) for s in starts]
        best = max(range(len(starts)), key=scores.__getitem__) if targeted else min(range(len(starts)),
                                                                                     key=scores.__getitem__)
        patch = starts[best].clone()
        velocity = torch.zeros_like(photos)
        done, tick = 0, self.progress("fit (at most)", c.iterations)
        while done < c.iterations:
            done += 1
            tick()
            worn = paste(photos, patch, region).requires_grad_(True)
            probs = []
            for batch in worn.split(c.batch_size):
                loss, prob = softmax_loss(model, batch, targeted)
                loss.sum().backward()
                probs.append(prob.detach())
            step = (c.step / n) * _unit_max(worn.grad * region)
            if c.tv_weight:
                tv = torch.autograd.grad(total_variation(worn), worn)[0]
                step = step - (c.tv_weight / n) * _unit_max(tv * region)
            velocity = c.momentum * velocity + step
            for r in velocity:  # each photo's step in turn; a component that would leave [0, 1] is dropped
                moved = patch + r
                patch = torch.where((moved < 0) | (moved > 1), patch, moved)
            patch = _quantise(patch)
            mean = float(torch.cat(probs).mean())  # of the patch before this step, as the reference's loop tests
            if (mean >= stop) if targeted else (mean <= stop):
                break
        info = {**self.base_info(model, surrogates), "fit_photos": n, "region": c.region,
                "area": float(region.mean()), "iterations_run": done, "label_probability": probability(patch),
                "start_colour": list(START_COLOURS[best])}
        return PatchProtector(patch, region, info)


@dataclass
class AdvHatConfig:
    region: str = "forehead-band"
    iterations: int = 2000  # a cap: the reference runs until both stages stop improving
    step: float = 1 / 51
    momentum: float = 0.9
    fine_step: float = 1 / 255
    fine_momentum: float = 0.995
    tv_weight: float = 1e-4
    window: int = 100  # losses the slope is fitted on
    patience: int = 100  # steps the first stage runs at least
    fine_patience: int = 200  # and the second

    def __post_init__(self) -> None:
        _check_region(self)
        if self.fine_step <= 0 or not 0 <= self.fine_momentum < 1 or self.window < 2 or \
                min(self.patience, self.fine_patience) < 0:
            raise ValueError("adv-hat needs fine_step > 0, 0 <= fine_momentum < 1, window >= 2, patience >= 0")


def _slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index."""
    y = torch.tensor(values, dtype=torch.float64)
    x = torch.arange(len(values), dtype=torch.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / x.square().sum())


@METHODS.register("adv-hat")
class AdvHat(RegionMethod):
    Config = AdvHatConfig
    needs_gradients: ClassVar[bool] = True
    paper = "Komkov & Petiushko, AdvHat: Real-World Adversarial Attack on ArcFace Face ID System, ICPR 2020"
    reference = "github.com/papermsucode/advhat (Attack/attack.py)"
    deviations: ClassVar[tuple[str, ...]] = (
        "digital only: the sticker is a flat band on the aligned canvas, without the off-plane bending and rotation "
        "and the random shifts the reference applies to each of its 20 views; the fit photos stand in for those "
        "views, and the clean embedding is the mean of the fit photos' (the reference: one photo without the hat)",
        "a cap of `iterations` steps in all (the reference has none)",
    )

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        c = self.config
        check_photos(photos, self.name)
        check_surrogates(surrogates, self.name)
        region = region_map(c.region, photos.shape[-1]).to(photos.device, photos.dtype)
        with torch.no_grad():
            anchors = [F.normalize(s.embed(photos).mean(0, keepdim=True), dim=1) for s in surrogates]
        inside = region[0, 0].nonzero()  # the sticker is the region's bounding box (a band: the region itself)
        rows, cols = (slice(int(inside[:, i].min()), int(inside[:, i].max()) + 1) for i in (0, 1))
        patch = torch.full((1, *photos.shape[1:]), 127 / 255, dtype=photos.dtype, device=photos.device)
        moments = torch.zeros_like(patch)
        step, momentum, stage, since, losses = c.step, c.momentum, 1, 0, []
        tick = self.progress("fit (at most)", c.iterations)
        for _ in range(c.iterations):
            tick()
            patch.requires_grad_(True)
            worn = paste(photos, patch, region)
            cosine = sum(F.normalize(s.embed(worn), dim=1).mul(a.to(worn.device)).sum(1).mean()
                         for s, a in zip(surrogates, anchors, strict=True)) / len(surrogates)
            (cosine + c.tv_weight * total_variation(patch[..., rows, cols])).backward()
            with torch.no_grad():
                moments = momentum * moments + (1 - momentum) * patch.grad * region
                patch = (patch - step * moments.sign()).clamp(0, 1)
            losses.append(float(cosine.detach()))
            since += 1
            if since > (c.patience if stage == 1 else c.fine_patience) and _slope(losses[-c.window:]) >= 0:
                if stage == 2:
                    break
                step, momentum, stage, since = c.fine_step, c.fine_momentum, 2, 0
        info = {"surrogates": [surrogate_name(s) for s in surrogates], "goal": self.goal, "fit_photos": len(photos),
                "region": c.region, "area": float(region.mean()), "iterations_run": len(losses),
                "cosine": losses[-1] if losses else None}
        return PatchProtector(patch.detach(), region, info)
