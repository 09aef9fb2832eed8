"""Chameleon's P3-Mask: one personalized privacy-protection mask per user, learned across the user's photos.

Paper: Chow et al., "Personalized Privacy Protection Mask Against Unauthorized Facial Recognition", ECCV 2024
(Chameleon). Reference code: git-disl/Chameleon (``core/chameleon.py``, ``main.py``). Threat model: query-side; the user publishes photos with their mask added, an unauthorized
recognizer matches them against a clean gallery (identification) or a clean photo (verification). The mask is
also the authorization key: whoever holds it subtracts it (``deobfuscate``) and recognition works again.

Algorithm (docs/protocol.md, "Chameleon"; paper defaults):
- mask initialised uniform in +-``step``; L-inf budget ``epsilon`` = 16/255 on the 0..1 scale;
- cross-image optimisation: ``epochs`` = 50 passes over the user's fit photos in shuffled batches of 4; each step
  mask <- clip(mask - step * sign(mean gradient over the batch), -epsilon, epsilon), x' = clip(x + mask, 0, 1);
  ``step`` = 1e-3 on the 0..1 scale (the paper's 1e-3 * 255 on 0..255);
- loss per photo = - sum over the ensemble of arccos(<f(x'), f(x)>) + lambda * max(DSSIM(x', x) - 0.03, 0),
  DSSIM = (1 - SSIM) / 2 measured over the reference's area (``dssim_area = "reference"``): the reference crops
  the MTCNN box plus a 30-pixel margin, squared and padded, and measures DSSIM over that whole 112 crop, of which
  the mask (zero on the margin and padding) covers about half. Here: a centred square of twice the face box's
  area (side 140 * sqrt(2) = 198 canvas pixels), of which the face-box mask covers half. Since SSIM is about 1
  where nothing changed, the 0.03 threshold then allows about twice the DSSIM inside the face box. The variant
  ``chameleon-face-dssim`` (ours) measures DSSIM on the face box only, the stricter reading;
- adaptive lambda (``next_lambda``), updated AFTER each step from that batch's mean DSSIM (as the reference
  does): halve when DSSIM <= 0.9 * 0.03 (if lambda >= 1/129), double when DSSIM >= 1.1 * 0.03 (if lambda <= 129),
  reset to 1 in between; so lambda stays within [1/258, 258];
- focal-diversity ensemble selection among the surrogates when more than ``team_size`` are given (below).

Mask geometry: the paper's mask is 112 x 112 x 3 on the aligned 112 crop and "is applied inside the face box".
Here the mask is a 1 x 3 x 224 x 224 canvas tensor that is zero outside the ArcFace face box (canvas pixels
[42, 182), exactly the paper's 112 crop at 1.25 canvas pixels per crop pixel; ``region = "face-box"``). A
surrogate whose framing is wider than ArcFace's sees an unmasked margin, as it would with the paper's mask.
``region = "canvas"`` lets the mask cover the whole canvas instead.

Focal diversity (after Wu et al., CVPR 2021, as used by Chameleon): "queries" are the user's fit photos, each
perturbed by a short PGD against every candidate surrogate in turn (``probe_steps`` sign steps of
``probe_step`` within ``probe_epsilon`` from a seeded random start), so each candidate sees photos crafted against
itself and against the others. A model *gets a query wrong* when the query made from fit photo i matches the
centroid of the user's *other* clean photos (normalised mean of the model's clean embeddings, leaving i out) less
than every clean fit photo matches its own leave-one-out centroid, i.e. the model would no longer accept it as the
user at the operating point where it accepts all the user's clean photos (and never because of its own clean
photo). Needs >= 3 fit photos. The queries are weaker than the mask on purpose: at 4/255 the crafting model
rejects nearly all its own queries and another rejects 10-30% (SFace vs the dlib ResNet port, two LFW users,
diversity 0.54 and 0.74), so the table tells teams apart; at 16/255 both rejected nearly all (diversity 0.0-0.03). For a team and a focal member, lambda_focal = mean, over the
queries the focal member gets wrong, of the fraction of the other members that also get them wrong; the team's
diversity d = mean over members of (1 - lambda_focal) (members that get nothing wrong carry no evidence and are
left out; a team where no member errs gets d = nan and ranks last). The most diverse team of ``team_size`` wins
(ties: the earliest in the given order). With at most ``team_size`` surrogates there is no choice to make: all
are used and no diversity is computed.

What still differs from the reference is listed in the class's ``deviations`` (shown by `bench list methods --json`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from bench.api import (
    CANVAS_SIZE,
    COUNT,
    FACE_BOX,
    FRACTION,
    METHODS,
    Target,
    at_least,
    check_ranges,
    dssim,
    face_region,
    positive,
)
from methods._universal import (
    angle,
    apply_mask,
    check_photos,
    check_region,
    check_surrogates,
    clean_embeddings,
    minibatches,
    project,
    region_support,
    surrogate_name,
    uniform_start,
)
from methods.base import MaskProtector, Method, Protector, seeded_generator

LAMBDA_GUARD = 129.0  # the reference halves only above 1/129 and doubles only below 129
LAMBDA_MIN, LAMBDA_MAX = 1 / (2 * LAMBDA_GUARD), 2 * LAMBDA_GUARD
DSSIM_AREAS = ("reference", "face-box")


@dataclass
class ChameleonConfig:
    epsilon: float = 16 / 255
    step: float = 1e-3  # the paper's learning rate, 1e-3 * 255 on the 0..255 scale
    epochs: int = 50
    batch_size: int = 4
    dssim_threshold: float = 0.03
    dssim_area: str = "reference"  # twice the face box's area, as the reference's crop; "face-box": ours
    team_size: int = 2
    region: str = "face-box"
    probe_epsilon: float = 4 / 255  # L-inf budget of the focal-diversity queries
    probe_steps: int = 4
    probe_step: float = 1 / 255

    def __post_init__(self) -> None:
        check_ranges(self, epsilon=FRACTION, step=positive(), epochs=COUNT, batch_size=COUNT,
                     # focal diversity compares members of a team
                     team_size=at_least(2, whole=True),
                     dssim_threshold=at_least(0), probe_steps=COUNT, probe_step=positive(), probe_epsilon=FRACTION)
        if self.dssim_area not in DSSIM_AREAS:
            raise ValueError(f"chameleon dssim_area must be one of {DSSIM_AREAS}, got {self.dssim_area!r}")
        check_region(self.region)


def next_lambda(lam: float, dssim_value: float, threshold: float) -> float:
    """Chameleon's adaptive weight of the DSSIM hinge (the reference's rule, applied after each step): halve at
    or below 0.9 x threshold while lambda >= 1/129, double at or above 1.1 x while lambda <= 129, reset to 1
    strictly between; otherwise unchanged."""
    if dssim_value <= 0.9 * threshold:
        return lam / 2 if lam >= 1 / LAMBDA_GUARD else lam
    if dssim_value >= 1.1 * threshold:
        return lam * 2 if lam <= LAMBDA_GUARD else lam
    return 1.0


def dssim_region(canvases: torch.Tensor, area: str) -> torch.Tensor:
    """Where the DSSIM hinge is measured: the face box, or a centred square of twice its area (the reference's
    crop, half of which its mask never touches), clipped to the canvas."""
    if area == "face-box":
        return face_region(canvases)
    size = canvases.shape[-1]
    a, b = (round(v * size / CANVAS_SIZE) for v in FACE_BOX)
    half = round((b - a) * math.sqrt(2) / 2)
    lo, hi = max(0, size // 2 - half), min(size, size // 2 + half)
    return canvases[..., lo:hi, lo:hi]


def focal_diversity(wrong: torch.Tensor) -> float:
    """Team diversity from a Q x M error table (True where member m gets query q wrong); see the module doc."""
    if wrong.ndim != 2 or wrong.shape[1] < 2:
        raise ValueError(
            f"focal_diversity needs a Q x M error table with M >= 2 members, got {tuple(wrong.shape)}"
        )
    wrong = wrong.bool()
    m = wrong.shape[1]
    terms = []
    for focal in range(m):
        rows = wrong[wrong[:, focal]]
        if len(rows) == 0:
            continue
        others_wrong = (rows.sum(1) - 1).float() / (m - 1)
        terms.append(1 - others_wrong.mean().item())
    return sum(terms) / len(terms) if terms else math.nan


def select_team(wrong: torch.Tensor, team_size: int) -> tuple[tuple[int, ...], float]:
    """The most diverse team (member indices) of ``team_size`` columns of the error table, and its diversity."""
    best, best_d = None, -math.inf
    for team in itertools.combinations(range(wrong.shape[1]), team_size):
        d = focal_diversity(wrong[:, list(team)])
        if best is None or (not math.isnan(d) and d > best_d):
            best, best_d = team, (d if not math.isnan(d) else -math.inf)
    return best, (best_d if best_d > -math.inf else math.nan)


def leave_one_out_centroids(emb: torch.Tensor) -> torch.Tensor:
    """Row i: the normalised mean of the user's other clean embeddings (all but i)."""
    others = (emb.sum(0, keepdim=True) - emb) / (len(emb) - 1)
    return torch.nn.functional.normalize(others, dim=1)


def error_table(surrogates: list[Target], photos: torch.Tensor, cfg: ChameleonConfig, gen) -> torch.Tensor:
    """Q x M table: does surrogate m fail to accept query q as the user (queries: PGD probes against each m).

    A query made from fit photo i is compared with the centroid of the user's other photos, and so is the clean
    photo i when the acceptance floor is set: the query's own clean photo never vouches for it.
    """
    clean = clean_embeddings(surrogates, photos)
    centroids = [leave_one_out_centroids(c) for c in clean]
    floors = [(c * mu).sum(1).min() for c, mu in zip(clean, centroids, strict=True)]
    queries = []
    for s, c in zip(surrogates, clean, strict=True):
        delta = torch.rand(photos.shape, generator=gen, device=photos.device, dtype=photos.dtype) * 2 - 1
        delta = (delta * cfg.probe_step).requires_grad_(True)
        for _ in range(cfg.probe_steps):
            loss = (s.embed(apply_mask(photos, delta)) * c).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = (delta - cfg.probe_step * grad.sign()).clamp(-cfg.probe_epsilon, cfg.probe_epsilon)
            delta.requires_grad_(True)
        queries.append(apply_mask(photos, delta.detach()))
    queries = torch.cat(queries)
    with torch.no_grad():
        wrong = [
            (s.embed(queries) * mu.repeat(len(surrogates), 1)).sum(1) < floor
            for s, mu, floor in zip(surrogates, centroids, floors, strict=True)
        ]
    return torch.stack(wrong, dim=1)


@METHODS.register("chameleon")
@METHODS.register("chameleon-face-dssim", dssim_area="face-box")
class Chameleon(Method):
    kind = "universal"
    Config = ChameleonConfig
    effort = "epochs"
    paper = (
        "Chow et al., Personalized Privacy Protection Mask Against Unauthorized Facial Recognition, ECCV 2024"
    )
    reference = "https://github.com/git-disl/Chameleon (core/chameleon.py, main.py)"
    deviations = (
        "STAND-IN: focal-diversity team selection, from the paper's description (the reference repository has "
        "no selection code and a fixed team, Celeb1M EfficientNet + InsightFace ArcFace R50): the error table "
        "comes from short PGD probes on the user's fit photos, see the module docstring",
        "surrogates are this project's targets, not the reference's team",
        "crop: the aligned canvas face box (ArcFace template, 140 x 140 canvas pixels) instead of the MTCNN box "
        "plus margin, unaligned, resized to 112; the DSSIM area is emulated as twice the face box's area, and "
        "DSSIM is computed at canvas resolution (SSIM's 11-pixel windows over 1.25 canvas pixels per crop pixel), "
        "not on the 112 px crop",
        "mini-batches drawn by a seeded torch permutation per epoch (the reference: Python random.shuffle with "
        "seed 2023); the mask starts uniform in +-step from the run's seed (the reference: numpy seed 2023)",
    )

    @classmethod
    def describe(cls, **preset) -> dict:
        row = super().describe(**preset)
        if preset.get("dssim_area") == "face-box":
            row["deviations"] = ["OUR VARIANT: DSSIM measured on the face box only (stricter: the reference's "
                                 "area is about half unmasked)", *row["deviations"]]
        return {**row, "loss": "-sum arccos + adaptive lambda * DSSIM hinge", "key": "mask (deobfuscate)"}

    def fit(self, photos: torch.Tensor, surrogates: list[Target], seed: int) -> Protector:
        cfg = self.config
        check_photos(photos, "chameleon")
        check_surrogates(surrogates, "chameleon")
        gen = seeded_generator(seed, photos.device)
        info: dict = {"candidates": [surrogate_name(s) for s in surrogates], "fit_photos": len(photos)}
        team = list(surrogates)
        if len(surrogates) > cfg.team_size:
            if len(photos) < 3:
                raise ValueError(
                    f"chameleon: focal-diversity selection among {len(surrogates)} surrogates needs >= 3 fit "
                    f"photos (leave-one-out floor), got {len(photos)}; pass at most team_size={cfg.team_size}"
                )
            wrong = error_table(surrogates, photos, cfg, gen)
            chosen, diversity = select_team(wrong, cfg.team_size)
            team = [surrogates[i] for i in chosen]
            info.update(
                diversity=None if math.isnan(diversity) else diversity,  # nan: no member erred, no evidence
                error_rate=wrong.float().mean(0).tolist(),
                selection="focal-diversity",
            )
        else:
            info.update(diversity=None, selection="all given surrogates (no choice to make)")
        info["team"] = [surrogate_name(s) for s in team]

        support = region_support(photos, cfg.region)
        clean = clean_embeddings(team, photos)
        mask = uniform_start(photos, cfg.step, support, gen)
        lam, lambdas = 1.0, []
        tick = self.progress("fit epochs", cfg.epochs)
        for _ in range(cfg.epochs):
            tick()
            for idx in minibatches(len(photos), cfg.batch_size, gen, photos.device):
                x = photos[idx]
                mask.requires_grad_(True)
                protected = apply_mask(x, mask)
                quality = dssim(dssim_region(protected, cfg.dssim_area), dssim_region(x, cfg.dssim_area))
                angles = sum(angle(s.embed(protected), c[idx]) for s, c in zip(team, clean, strict=True))
                loss = (-angles + lam * (quality - cfg.dssim_threshold).clamp_min(0)).mean()
                (grad,) = torch.autograd.grad(loss, mask)
                with torch.no_grad():
                    mask = project(mask - cfg.step * grad.sign(), cfg.epsilon, support)
                lambdas.append(lam)
                lam = next_lambda(lam, quality.mean().item(), cfg.dssim_threshold)  # after the step
        info.update(final_lambda=lam, mean_lambda=sum(lambdas) / len(lambdas), steps=len(lambdas))
        return MaskProtector(mask.detach(), info)  # the P3-Mask; deobfuscate subtracts it
