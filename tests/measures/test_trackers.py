"""Trackers: linkage of posted photos to each other, and the dynamic gallery that enrols what it recognises, on
real LFW faces embedded by a real target (SFace)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.measures.psr import (
    enrolled_outcomes,
    gallery_thresholds,
    identity_sums,
    identity_templates,
    linkage_outcomes,
    user_outcome,
)
from bench.registry import ADVERSARIES


@pytest.fixture(scope="module")
def embedded(lfw_faces, sface) -> dict[str, torch.Tensor]:
    """Each of the four identities' eight photos through SFace."""
    with torch.no_grad():
        return {name: sface.embed(photos) for name, photos in lfw_faces.items()}


def test_clean_photos_link_to_their_owner(embedded):
    """The baseline: clean LFW photos of four people, the nearest other photo is the owner's (SFace)."""
    outcomes = linkage_outcomes(embedded)
    assert set(outcomes) == set(embedded)
    assert all(o.queries == 8 for o in outcomes.values())
    linked = 1 - sum(o.psr["top1"] for o in outcomes.values()) / len(outcomes)
    assert linked >= 0.9, {u: o.psr for u, o in outcomes.items()}


def test_linkage_counts_a_post_with_nothing_of_its_own_as_unlinked(embedded):
    posts = {name: emb[:1] if name == "Colin_Powell" else emb for name, emb in embedded.items()}
    assert linkage_outcomes(posts)["Colin_Powell"].psr == {"top1": 1.0, "top5": 1.0}
    # held beside one clean photo of each user, that single post has its owner's clean photo to link to
    anchors = {name: emb[-1:] for name, emb in embedded.items()}
    posts = {name: emb[:-1] if name != "Colin_Powell" else emb[:1] for name, emb in embedded.items()}
    assert linkage_outcomes(posts, anchors)["Colin_Powell"].psr["top1"] == 0.0


def gallery_of(embedded: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    """The first four photos of each identity, as a clean gallery."""
    labels = [name for name in embedded for _ in range(4)]
    return torch.cat([emb[:4] for emb in embedded.values()]), labels


def test_nothing_enrolled_scores_as_the_fixed_gallery(embedded):
    gallery, labels = gallery_of(embedded)
    sums, names = identity_sums(gallery, labels)
    posts = torch.cat([emb[4:] for emb in embedded.values()])
    owners = [name for name in embedded for _ in range(4)]
    none = torch.full((len(posts),), -1)
    scored = enrolled_outcomes(sums, names, posts, owners, none, {"far1e-3": 0.3})
    templates, _ = identity_templates(gallery, labels)
    for name, emb in embedded.items():
        assert scored[name].psr == user_outcome(name, emb[4:], templates, names, {"far1e-3": 0.3}).psr


def test_dynamic_gallery_enrols_in_rounds_and_stops(embedded):
    """Real clean photos above the gallery's own threshold join their owner's identity; every round but the last
    enrols something, and a post is never scored against itself."""
    gallery, labels = gallery_of(embedded)
    sums, names = identity_sums(gallery, labels)
    posts = torch.cat([emb[4:] for emb in embedded.values()])
    owners = [name for name in embedded for _ in range(4)]
    thresholds = gallery_thresholds(gallery, labels)
    assert set(thresholds) == {"far1e-2", "far1e-3"} and thresholds["far1e-2"] <= thresholds["far1e-3"]
    tracker = ADVERSARIES.create("dynamic-gallery")
    assert tracker.kind == "estimation" and tracker.grows_gallery
    enrolled, rounds = tracker.enrol(sums, posts, thresholds)
    assert 1 <= rounds <= tracker.config.rounds
    joined = enrolled >= 0
    assert joined.any()
    assert all(names[int(e)] == o for e, o, j in zip(enrolled, owners, joined, strict=True) if j)
    # once enrolled, a post stays: a second pass from the grown gallery enrols nothing new away from it
    again, _ = ADVERSARIES.create("dynamic-gallery", rounds=1).enrol(sums, posts, thresholds)
    assert ((again >= 0) <= joined).all()  # one round enrols a subset of what rounds enrol
    scored = enrolled_outcomes(sums, names, posts, owners, enrolled)
    assert all(o.queries == 4 for o in scored.values())


def test_dynamic_gallery_pulls_in_photos_that_share_a_pattern():
    """Pure math: one post is recognised; the user's others, far from the user's template but close to that post
    (they share its pattern), are enrolled in the following rounds, and then score as recognised."""
    g = torch.Generator().manual_seed(1)
    dim = 32
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=g))[0].T
    user, other, pattern = basis[0], basis[1], basis[2]
    sums = torch.stack([user, other])  # one clean gallery photo each
    posts = F.normalize(torch.stack([0.8 * user + 0.6 * pattern, 0.45 * user + 0.9 * pattern,
                                     0.2 * user + 1.0 * pattern]), dim=1)
    enrolled, rounds = ADVERSARIES.create("dynamic-gallery").enrol(sums, posts, {"far1e-3": 0.7})
    assert enrolled.tolist() == [0, 0, 0] and rounds == 4  # one a round, then a round that enrols nothing
    stuck, _ = ADVERSARIES.create("dynamic-gallery", rounds=1).enrol(sums, posts, {"far1e-3": 0.7})
    assert stuck.tolist() == [0, -1, -1]
    # verified against the user's template at the threshold: 2 of 3 fail the fixed gallery, none the grown one
    # (each post against the template grown by the others)
    fixed = enrolled_outcomes(sums, ["u", "v"], posts, ["u"] * 3, torch.full((3,), -1), {"far1e-3": 0.7})["u"]
    grown = enrolled_outcomes(sums, ["u", "v"], posts, ["u"] * 3, enrolled, {"far1e-3": 0.7})["u"]
    assert fixed.psr["far1e-3"] == pytest.approx(2 / 3) and grown.psr["far1e-3"] == 0.0


def test_dynamic_gallery_says_which_threshold_it_lacks():
    tracker = ADVERSARIES.create("dynamic-gallery", far="far1e-4")
    with pytest.raises(ValueError, match="far1e-4"):
        tracker.enrol(torch.eye(2), torch.eye(2), {"far1e-3": 0.5})
