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

from bench.canvas import FACE_BOX
from bench.identity_bank import standalone_context
from bench.registry import METHODS, TARGETS
from methods.chameleon import LAMBDA_MAX, LAMBDA_MIN, focal_diversity, next_lambda, select_team
from methods.opom import affine_hull_residual, convex_hull_weights, project_simplex

UNIVERSAL = [n for n in METHODS.names() if METHODS.entry(n).cls.kind == "universal"]
USER = "Colin_Powell"
SHORT = {"epochs": 1, "iterations": 1, "views": 0, "anchors": "negation"}
# Shortened, but with steps large enough to move the mask far in a few updates (the loss-direction test).
STRONG = {
    "epochs": 3,
    "iterations": 4,
    "step": 2 / 255,
    "step_size": 2 / 255,
    "views": 0,
    "anchors": "negation",
}


def overrides(name: str, wanted: dict) -> dict:
    fields = {f.name for f in dataclasses.fields(METHODS.entry(name).cls.Config)}
    return {k: v for k, v in wanted.items() if k in fields}


@pytest.fixture(scope="module")
def sface():
    target = TARGETS.create("sface")
    ok, reason = type(target).availability()
    if not ok:
        pytest.skip(f"sface unavailable: {reason}")
    target.load()
    return target


@pytest.fixture(scope="module")
def user(lfw_faces):
    photos = lfw_faces[USER]
    return photos[:4], photos[4:]  # fit photos, held-out photos


_fitted: dict = {}


def fitted(name: str, wanted: dict, sface, fit_photos: torch.Tensor, seed: int = 0):
    key = (name, tuple(sorted(wanted.items())), len(fit_photos), seed)
    if key not in _fitted:
        method = METHODS.create(name, **overrides(name, wanted))
        _fitted[key] = (method, method.fit(fit_photos, [sface], seed=seed))
    return _fitted[key]


def test_universal_methods_registered():
    assert {"chameleon", "uap", "facecloak", "opom-convex-hull", "opom-affine-hull", "opom-fi-uap"} <= set(
        UNIVERSAL
    )


@pytest.mark.parametrize("name", UNIVERSAL)
def test_budget_range_and_face_box(name, sface, user):
    fit_photos, held = user
    method, protector = fitted(name, SHORT, sface, fit_photos[:2])
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


@pytest.mark.parametrize("name", UNIVERSAL)
def test_same_seed_same_mask(name, sface, user):
    fit_photos = user[0][:2]
    _, first = fitted(name, SHORT, sface, fit_photos)
    method = METHODS.create(name, **overrides(name, SHORT))
    again = method.fit(fit_photos, [sface], seed=0).state()["mask"]
    other = method.fit(fit_photos, [sface], seed=1).state()["mask"]
    assert torch.equal(first.state()["mask"], again)
    assert not torch.equal(again, other)


@pytest.mark.parametrize("name", UNIVERSAL)
def test_fitted_mask_moves_unseen_photos_away(name, sface, user):
    """On photos the mask never saw, the fitted mask turns SFace further from the clean embedding than a control
    of the same per-pixel magnitudes with random signs does."""
    fit_photos, held = user
    _, protector = fitted(name, STRONG, sface, fit_photos)
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


def test_chameleon_deobfuscate_restores_clean_embedding(sface, user):
    fit_photos, held = user
    _, protector = fitted("chameleon", STRONG, sface, fit_photos)
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
    t = 0.03
    assert next_lambda(1.0, 0.9 * t, t) == 0.5  # at the lower edge: halve
    assert next_lambda(1.0, 0.0, t) == 0.5
    assert next_lambda(4.0, 1.1 * t, t) == 8.0  # at the upper edge: double
    assert next_lambda(8.0, t, t) == 1.0  # inside the band: reset
    assert next_lambda(0.25, 0.031, t) == 1.0
    assert next_lambda(LAMBDA_MIN, 0.0, t) == LAMBDA_MIN  # kept in [1/129, 129]
    assert next_lambda(100.0, 1.0, t) == LAMBDA_MAX
    lam = 1.0
    for value in [0.01, 0.01, 0.05, 0.05, 0.05, 0.03]:
        lam = next_lambda(lam, value, t)
    assert lam == 1.0
    lam = 1.0
    for value in [0.01, 0.01, 0.05]:
        lam = next_lambda(lam, value, t)
    assert lam == 0.5  # 1 -> 0.5 -> 0.25 -> 0.5


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


def test_facecloak_uses_bank_anchors(sface, user, lfw_root):
    fit_photos, held = user
    method = METHODS.create("facecloak", iterations=1, views=1, bank_identities=10)
    protector = method.bind(standalone_context(lfw_root, exclude=(USER,))).fit(fit_photos, [sface], seed=0)
    info = protector.info()
    assert info["anchors"] == "bank", info
    assert info["far_identity"] != info["near_identity"]
    assert "stand-in" in info["training_set"] and "stand_in" in METHODS.entry("facecloak").cls.describe()
    assert (protector.protect(held) - held).abs().max() <= method.budget().linf + 1e-6


def test_facecloak_falls_back_to_negation_when_the_run_has_no_bank(sface, user, lfw_root):
    fit_photos, _ = user
    method = METHODS.create("facecloak", iterations=1, views=0, bank_identities=100000)
    info = method.bind(standalone_context(lfw_root)).fit(fit_photos, [sface], seed=0).info()
    assert info["anchors"] == "negation of the user centroid"
    assert "identity bank needs 100000 people" in info["fallback_reason"]
