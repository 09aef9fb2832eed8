"""Fawkes v1.0's rules (``methods/fawkes.py``): the adaptive feature weight, the farthest iterate within 1.1 x
threshold, save-last-on-failure, and the harness's budget, on a real LFW face with the SFace surrogate
(white-box) and fewer steps than the modes run."""

from __future__ import annotations

import pytest
import torch

from bench.registry import METHODS, TARGETS
from bench.run.budget import check_budget
from methods._fawkes_core import face_dssim
from methods.fawkes import TOLERANCE, adapt_weight, use_last_iterate

USER = "Colin_Powell"
STEPS = 20


def _replay(dists: list[float], threshold: float = 0.01) -> list[float]:
    weight, side = torch.ones(1), torch.ones(1)
    seen = []
    for d in dists:
        weight, side = adapt_weight(weight, side, torch.tensor([d]), threshold)
        seen.append(float(weight))
    return seen


def test_weight_doubles_below_halves_above_and_resets_when_the_side_changes():
    low, mid, high = 0.005, 0.01, 0.02  # threshold 0.01: below 0.9 x, inside the band, above 1.1 x
    # below: doubling up to 256 (allowed while <= 129), then v1.0's quirk resets it to 1
    assert _replay([low] * 10) == [2, 4, 8, 16, 32, 64, 128, 256, 1, 2]
    # above: the side starts "below", so the first step above resets to 1, then halving down to 1/256
    assert _replay([high] * 10) == [1, 0.5, 0.25, 0.125, 0.0625, 1 / 32, 1 / 64, 1 / 128, 1 / 256, 1]
    # crossing from one side to the other, or landing in the band, resets to 1
    assert _replay([low, low, high, high, low, mid, low]) == [2, 4, 1, 0.5, 1, 1, 2]


def test_last_iterate_replaces_a_weak_pick_only_within_v1_limits():
    best = torch.tensor([0.1, 0.1, 0.1, 0.5, 0.0, 0.1])
    last_dssim = torch.tensor([0.01, 0.02, 0.01, 0.01, 0.03, 0.01])
    last_shift = torch.tensor([0.2, 0.2, 0.05, 0.9, 0.2, 0.1])
    # saved: weak pick, last under 0.015 and farther; not when last too far in DSSIM, closer, or pick strong;
    # nothing kept at all: the last iterate
    assert use_last_iterate(best, last_dssim, last_shift).tolist() == [True, False, False, False, True, False]


@pytest.fixture(scope="module")
def cloaked(lfw_faces):
    sface = TARGETS.create("sface")
    ok, reason = sface.availability()
    if not ok:
        pytest.skip(f"sface unavailable: {reason}")
    photos = lfw_faces[USER]
    method = METHODS.create("fawkes-low", steps=STEPS)
    protector = method.fit(photos[:4], [sface], 0)
    clean = photos[4:5]
    return sface, method, protector, clean, protector.protect(clean)


def test_weight_adapts_by_the_rule_during_a_real_run(cloaked):
    _, method, protector, _, _ = cloaked
    h = protector.history
    assert h["dssim"].shape == (STEPS, 1)
    weight, side = torch.ones(1), torch.ones(1)
    for t in range(STEPS):
        assert torch.equal(h["weight"][t], weight), t
        weight, side = adapt_weight(weight, side, h["dssim"][t], method.config.dssim_budget)
    assert len(set(h["weight"].flatten().tolist())) > 2, "the weight never moved"


def test_keeps_the_farthest_iterate_within_tolerance_and_the_harness_budget(cloaked):
    _, method, protector, clean, protected = cloaked
    h = protector.history
    inside = h["dssim"][:, 0] <= TOLERANCE * method.config.dssim_budget
    assert protector.kept == ["farthest"]
    assert protector.kept_shift[0] == pytest.approx(float(h["feature"][inside, 0].max()))
    worst = check_budget("fawkes-low", method.budget().bounds(), protected, clean)
    assert method.budget().dssim == pytest.approx(TOLERANCE * 0.004)
    # the budget is spent: the pick sits near the threshold, not at the clean photo
    assert 0.8 * method.config.dssim_budget < worst["dssim"] <= method.budget().dssim
    assert float(face_dssim(protected, clean)) == pytest.approx(protector.info()["dssim"][0], abs=1e-6)


def test_moves_the_embedding_away_from_the_clean_photo(cloaked):
    sface, _, _, clean, protected = cloaked
    with torch.no_grad():
        cos = float((sface.embed(protected) * sface.embed(clean)).sum())
    assert cos < 0.8, cos
