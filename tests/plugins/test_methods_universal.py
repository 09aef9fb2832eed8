"""Universal (one mask per user) methods on real LFW faces with the SFace surrogate.

Every registered method of kind "universal" is checked for its budget, range, face-box support and determinism;
each is shortened by config overrides (fewer epochs/iterations) so the file stays fast on 2 CPU cores. The math
pieces (Chameleon's lambda schedule, focal diversity, OPOM's hull solvers) are checked on hand-made inputs.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from bench.data.canvas import FACE_BOX
from bench.registry import METHODS
from bench.run.assembly import standalone_context
from methods.base import seeded_generator
from methods.chameleon import LAMBDA_MAX, LAMBDA_MIN, dssim_region, focal_diversity, next_lambda, select_team
from methods.facecloak import sticker_cover
from methods.opom import affine_hull_residual, convex_hull_weights, project_simplex

# Additive L-inf masks; region patches (area budgets, replaced pixels) are tested in test_methods_baselines.py.
UNIVERSAL = [n for n in METHODS.names()
             if METHODS.entry(n).cls.kind == "universal" and METHODS.create(n).budget().linf is not None]


def by_default(names: list[str]) -> list:
    """OPOM's -signavg and -mdfa presets of the other losses share their rule with opom-class-center's: one of
    each family runs by default, the rest with the slow tests."""
    def case(name: str):
        family = name.endswith(("-signavg", "-mdfa"))
        return pytest.param(name, marks=pytest.mark.slow) if family and "class-center" not in name else name
    return [case(n) for n in names]


USER = "Colin_Powell"
SMALL_BANK = {"bank_identities": 6, "bank_photos": 1}
SHORT = {"epochs": 1, "iterations": 1, "views": 0, "anchors": "negation", **SMALL_BANK}
# Shortened, but with steps large enough to move the mask far in a few updates (the loss-direction test).
STRONG = {
    "epochs": 3,
    "iterations": 4,
    "step": 2 / 255,
    "step_size": 2 / 255,
    "views": 0,
    "anchors": "negation",
    **SMALL_BANK,
}


def overrides(name: str, wanted: dict) -> dict:
    fields = {f.name for f in dataclasses.fields(METHODS.entry(name).cls.Config)}
    return {k: v for k, v in wanted.items() if k in fields}


@pytest.fixture(scope="module")
def user(lfw_faces):
    photos = lfw_faces[USER]
    return photos[:4], photos[4:]  # fit photos, held-out photos


_fitted: dict = {}


def fitted(name: str, wanted: dict, sface, context, fit_photos: torch.Tensor, seed: int = 0):
    key = (name, tuple(sorted(wanted.items())), len(fit_photos), seed)
    if key not in _fitted:
        method = METHODS.create(name, **overrides(name, wanted)).bind(context)
        _fitted[key] = (method, method.fit(fit_photos, [sface], seed=seed))
    return _fitted[key]


def test_universal_methods_registered():
    assert {"chameleon", "uap", "facecloak", "opom-convex-hull", "opom-affine-hull", "opom-fi-uap",
            "universal-mi-di-ti", "universal-mi"} <= set(UNIVERSAL)


@pytest.mark.parametrize("name", by_default(UNIVERSAL))
def test_budget_range_and_face_box(name, sface, user, context):
    fit_photos, held = user
    method, protector = fitted(name, SHORT, sface, context, fit_photos[:2])
    protected = protector.protect(held)
    eps = method.budget().linf
    assert eps is not None and protected.shape == held.shape
    assert protected.min() >= 0 and protected.max() <= 1
    assert (protected - held).abs().max() <= eps + 1e-6
    mask = protector.state()["mask"]
    assert mask.abs().max() <= eps + 1e-6
    a, b = FACE_BOX
    outside = mask.clone()
    outside[..., a:b, a:b] = 0
    assert outside.abs().max() == 0, "the mask must stay inside the face box (region='face-box')"
    assert mask.abs().max() > 0


@pytest.mark.parametrize("name", by_default(UNIVERSAL))
def test_same_seed_same_mask(name, sface, user, context):
    fit_photos = user[0][:2]
    _, first = fitted(name, SHORT, sface, context, fit_photos)
    method = METHODS.create(name, **overrides(name, SHORT)).bind(context)
    again = method.fit(fit_photos, [sface], seed=0).state()["mask"]
    other = method.fit(fit_photos, [sface], seed=1).state()["mask"]
    assert torch.equal(first.state()["mask"], again)
    assert not torch.equal(again, other)


# OPOM's momentum + DFANet presets average per-photo sign steps under feature dropout: a handful of iterations
# barely moves the mask (4 iterations: held-out cosine 0.98), so they are judged at their 100 iterations below.
SHORT_ENOUGH = [n for n in UNIVERSAL if not n.endswith("-mdfa")]


@pytest.mark.parametrize("name", by_default(SHORT_ENOUGH))
def test_fitted_mask_moves_unseen_photos_away(name, sface, user, context):
    """On photos the mask never saw, the fitted mask turns SFace further from the clean embedding than a control
    of the same per-pixel magnitudes with random signs does."""
    fit_photos, held = user
    _, protector = fitted(name, STRONG, sface, context, fit_photos)
    assert_beats_random_signs(name, protector, sface, held)


@pytest.mark.slow
def test_opom_momentum_dfanet_preset_at_its_iterations(sface, user):
    fit_photos, held = user
    protector = METHODS.create("opom-class-center-mdfa").fit(fit_photos, [sface], seed=0)
    assert_beats_random_signs("opom-class-center-mdfa", protector, sface, held)


def assert_beats_random_signs(name, protector, sface, held):
    mask = protector.state()["mask"]
    gen = torch.Generator().manual_seed(7)
    control = mask.abs() * (torch.randint(0, 2, mask.shape, generator=gen) * 2 - 1)
    with torch.no_grad():
        clean = sface.embed(held)
        fitted_cos = (sface.embed(protector.protect(held)) * clean).sum(1).mean().item()
        control_cos = (sface.embed((held + control).clamp(0, 1)) * clean).sum(1).mean().item()
    assert fitted_cos < control_cos - 0.03, (
        f"{name}: fitted {fitted_cos:.3f} vs random signs {control_cos:.3f}"
    )


def test_chameleon_deobfuscate_restores_clean_embedding(sface, user, context):
    fit_photos, held = user
    _, protector = fitted("chameleon", STRONG, sface, context, fit_photos)
    assert protector.has_key
    with torch.no_grad():
        clean = sface.embed(held)
        protected = protector.protect(held)
        assert (sface.embed(protected) * clean).sum(1).mean() < 0.95
        restored = sface.embed(protector.deobfuscate(protected))
    assert (restored * clean).sum(1).min() > 0.99


def test_chameleon_selects_team_and_reports_it(sface, user):
    """Three candidates, team of two: the error table is built on the user's photos and the choice recorded.
    The candidates are one model three times, so every team has identical errors: diversity 0, first team."""
    fit_photos, _ = user
    method = METHODS.create("chameleon", epochs=1, probe_steps=2)
    info = method.fit(fit_photos, [sface, sface, sface], seed=0).info()
    assert info["selection"] == "focal-diversity"
    assert info["team"] == ["sface", "sface"]
    assert info["diversity"] == pytest.approx(0.0)
    assert all(rate > 0 for rate in info["error_rate"])


def test_lambda_schedule_hand_computed():
    """The reference's rule (git-disl/Chameleon core/chameleon.py): halve while >= 1/129, double while <= 129."""
    t = 0.03
    assert next_lambda(1.0, 0.9 * t, t) == 0.5  # at the lower edge: halve
    assert next_lambda(1.0, 0.0, t) == 0.5
    assert next_lambda(4.0, 1.1 * t, t) == 8.0  # at the upper edge: double
    assert next_lambda(8.0, t, t) == 1.0  # inside the band: reset
    assert next_lambda(0.25, 0.031, t) == 1.0
    assert next_lambda(1 / 128, 0.0, t) == 1 / 256  # 1/128 >= 1/129: still halved
    assert next_lambda(1 / 256, 0.0, t) == 1 / 256  # below 1/129: kept
    assert next_lambda(128.0, 1.0, t) == 256.0 and next_lambda(256.0, 1.0, t) == 256.0
    assert LAMBDA_MIN == 1 / 258 and LAMBDA_MAX == 258
    lam = 1.0
    for value in [0.01, 0.01, 0.05, 0.05, 0.05, 0.03]:
        lam = next_lambda(lam, value, t)
    assert lam == 1.0
    lam = 1.0
    for value in [0.01, 0.01, 0.05]:
        lam = next_lambda(lam, value, t)
    assert lam == 0.5  # 1 -> 0.5 -> 0.25 -> 0.5


def test_chameleon_dssim_area_is_twice_the_face_box():
    x = torch.zeros(1, 3, 224, 224)
    a, b = FACE_BOX
    assert dssim_region(x, "face-box").shape[-1] == b - a
    side = dssim_region(x, "reference").shape[-1]
    assert abs(side**2 / (b - a) ** 2 - 2) < 0.03  # the mask covers half of it, as in the reference's crop


def test_focal_diversity_hand_made_table():
    wrong = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    # focal 0: rows 0,1; others wrong 1/2, 0 -> lambda 0.25. focal 1: rows 0,2 -> 0.5. focal 2: rows 2,3 -> 0.25.
    assert focal_diversity(wrong) == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    # pairs: (0,1) -> 0.5, (0,2) -> 1 (never wrong together), (1,2) -> 0.5
    team, d = select_team(wrong, 2)
    assert team == (0, 2) and d == pytest.approx(1.0)
    assert focal_diversity(torch.ones(5, 3, dtype=torch.bool)) == pytest.approx(0.0)
    assert math.isnan(focal_diversity(torch.zeros(4, 2, dtype=torch.bool)))
    # a team with no errors at all ranks below one with evidence
    lopsided = torch.tensor([[0, 0, 1], [0, 0, 1]], dtype=torch.bool)
    assert select_team(lopsided, 2)[0] == (0, 2)
    with pytest.raises(ValueError):
        focal_diversity(torch.ones(3, 1, dtype=torch.bool))


def test_hull_solvers_on_hand_made_points():
    assert torch.allclose(
        project_simplex(torch.tensor([[0.2, 0.2, 0.2], [2.0, 0.0, -1.0]])),
        torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]]),
    )
    square = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    points = torch.tensor([[0.5, 0.5, 2.0], [3.0, 0.5, 0.0], [2.0, 2.0, 0.0]])
    nearest = convex_hull_weights(points, square, steps=500) @ square
    expected = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.5, 0.0], [1.0, 1.0, 0.0]])
    assert torch.allclose(nearest, expected, atol=1e-3)
    residual = affine_hull_residual(points, square)  # affine hull: the z = 0 plane
    assert torch.allclose(
        residual, torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), atol=1e-5
    )


def test_bad_inputs_get_clear_errors(sface, user):
    fit_photos, _ = user
    with pytest.raises(ValueError, match="surrogate"):
        METHODS.create("chameleon").fit(fit_photos, [], seed=0)
    with pytest.raises(ValueError, match="canvases"):
        METHODS.create("uap").fit(fit_photos[0], [sface], seed=0)
    with pytest.raises(Exception, match="region"):
        METHODS.create("opom-fi-uap", region="hair")


def test_opom_momentum_dfanet_is_seeded_and_leaves_the_surrogate_intact(sface, user):
    fit_photos, held = user
    with torch.no_grad():
        before = sface.embed(held)
    method = METHODS.create("opom-convex-hull", iterations=2, momentum=1.0, dfanet_rate=0.02)
    first = method.fit(fit_photos, [sface], seed=3)
    second = method.fit(fit_photos, [sface], seed=3)
    assert torch.equal(first.state()["mask"], second.state()["mask"])
    assert first.info()["dfanet_rate"] == 0.02
    with torch.no_grad():
        assert torch.equal(sface.embed(held), before), "feature-dropout hooks must be removed after fitting"


def test_facecloak_8_uses_bank_anchors(sface, user, lfw_root):
    fit_photos, held = user
    method = METHODS.create("facecloak-8", iterations=1, views=1, bank_identities=10)
    protector = method.bind(standalone_context(lfw_root, exclude=(USER,))).fit(fit_photos, [sface], seed=0)
    info = protector.info()
    assert info["anchors"] == "bank", info
    assert info["far_identity"] != info["near_identity"]
    assert "stand_in" in METHODS.entry("facecloak-8").cls.describe()
    assert (protector.protect(held) - held).abs().max() <= method.budget().linf + 1e-6


def test_facecloak_falls_back_to_negation_when_the_run_has_no_bank(sface, user, lfw_root):
    fit_photos, _ = user
    method = METHODS.create("facecloak-8", iterations=1, views=0, bank_identities=100000)
    info = method.bind(standalone_context(lfw_root)).fit(fit_photos, [sface], seed=0).info()
    assert info["anchors"] == "negation of the user centroid"
    assert "identity bank needs 100000 people" in info["fallback_reason"]


@pytest.mark.slow
def test_facecloak_learns_from_one_photo_with_stickers(sface, user, lfw_root):
    """The reference's FaceCloak: one fit photo (its augmentations stand in for generated ones), 8/255 off the
    sticker boxes, up to 8/255 + 32/255 in them."""
    fit_photos, held = user
    method = METHODS.create("facecloak", iterations=2, views=2)
    assert method.budget().linf == pytest.approx(40 / 255)
    method = method.bind(standalone_context(lfw_root, exclude=(USER,)))
    protector = method.fit(fit_photos, [sface], seed=0)
    again = method.fit(fit_photos[:1], [sface], seed=0)
    assert torch.equal(protector.state()["mask"], again.state()["mask"]), "only the first fit photo is used"
    info = protector.info()
    assert info["fit_photos"] == 1 and "stand-in" in info["training_set"] and info["anchors"] == "bank"
    mask = protector.state()["mask"]
    boxes = sticker_cover(224) > 0
    assert mask[~boxes.expand_as(mask)].abs().max() <= 8 / 255 + 1e-6
    assert 8 / 255 + 1e-6 < mask[boxes.expand_as(mask)].abs().max() <= 40 / 255 + 1e-6


def test_sticker_boxes_sit_on_eyes_nose_and_mouth():
    cover = sticker_cover(224)[0, 0]
    a, b = FACE_BOX
    assert cover[:a].sum() == 0 and cover[b:].sum() == 0 and cover[:, :a].sum() == 0 and cover[:, b:].sum() == 0
    assert cover.max() == 2  # the nose box overlaps the mouth box, as in the reference
    for x, y in [(90, 107), (134, 107), (112, 132), (112, 157)]:  # the template's eyes, nose, mouth centre
        assert cover[y, x] >= 1


def opom_start(photos: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """The per-photo start the reference rule draws (uniform in +-eps on the face box)."""
    noise = torch.rand(photos.shape, generator=seeded_generator(seed, photos.device))
    support = torch.zeros(1, 1, 224, 224)
    a, b = FACE_BOX
    support[..., a:b, a:b] = 1
    return photos + (noise * 2 - 1) * eps * support, support


def test_opom_takes_the_sign_of_the_mean_gradient(sface, user):
    """zhongyy/OPOM's FIM, one iteration on two photos: each photo's copy starts uniform in +-eps, all take one
    step along sign(mean gradient), and the mask is the clipped mean perturbation."""
    photos = user[0][:2]
    eps, step = 8 / 255, 1 / 255
    protector = METHODS.create("opom-fi-uap", iterations=1).fit(photos, [sface], seed=5)
    adv, support = opom_start(photos, eps, seed=5)
    adv.requires_grad_(True)
    with torch.no_grad():
        clean = sface.embed(photos)
    dist = ((sface.embed(adv) - clean) ** 2).sum()
    (grad,) = torch.autograd.grad(dist, adv)
    with torch.no_grad():
        moved = adv + step * grad.mean(0, keepdim=True).sign() * support
        expected = (moved - photos).mean(0, keepdim=True).clamp(-eps, eps) * support
    assert torch.allclose(protector.state()["mask"], expected, atol=1e-6)


@pytest.mark.slow
def test_opom_reference_rule_uses_more_of_its_budget_than_sign_averaging(sface, user):
    """The issue's finding: averaging per-photo signs cancels where photos disagree, so the mask stays small."""
    fit_photos, held = user
    masks = {}
    for name in ("opom-class-center", "opom-class-center-signavg"):
        masks[name] = METHODS.create(name, iterations=4).fit(fit_photos, [sface], seed=0).state()["mask"]
    a, b = FACE_BOX
    amplitude = {n: m[..., a:b, a:b].abs().mean().item() for n, m in masks.items()}
    assert amplitude["opom-class-center"] > 1.5 * amplitude["opom-class-center-signavg"], amplitude


def test_opom_fi_uap_plus_follows_the_class_centre(sface, user):
    """The reference's FI-UAP+ (mean cosine to the user's clean features) has ClassCenter's gradient direction,
    so under the sign rule both give the same mask."""
    fit_photos = user[0]
    plus = METHODS.create("opom-fi-uap-plus", iterations=2).fit(fit_photos, [sface], seed=0).state()["mask"]
    centre = METHODS.create("opom-class-center", iterations=2).fit(fit_photos, [sface], seed=0).state()["mask"]
    assert (plus != centre).float().mean() < 0.01
