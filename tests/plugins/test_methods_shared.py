"""Every registered method, tested by being registered: its description, budget, range, determinism by seed and
the direction it moves a real face, on LFW photos with the SFace surrogate.

Each method is shortened by config overrides (``FAST``: applied where the method's config has the field) so the
file stays fast on 2 CPU cores; method-specific behaviour is tested in the per-family files. The fits run by
default for one preset of every method class (the one with the fewest config overrides); the other
presets of a class (e.g. ``fawkes-mid``, ``cw-impersonation``) differ only in config and run under ``-m slow``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.registry import METHODS
from bench.run.budget import check_budget
from methods._classifier import ClassifierMethod
from methods.base import GOALS

USER = "Colin_Powell"
NAMES = METHODS.names()
# The preset of each class with the fewest config overrides (alphabetically first among equals).
FIRST_OF_CLASS = {METHODS.entry(n).cls: n
                  for n in sorted(NAMES, key=lambda n: (len(METHODS.entry(n).preset), n), reverse=True)}.values()
# Shortened schedules; invariants do not depend on the number of steps.
FAST = {
    "steps": 2, "iterations": 2, "epochs": 1, "queries": 10, "neighbours": 1, "copies": 2,
    "bank_identities": 6, "bank_photos": 1, "farthest": 3, "candidates": 2, "probe_steps": 1, "views": 0,
    "anchors": "negation",
}
# APGD and CW return a photo unchanged until it fools the surrogate classifier, and Jitter's first steps are
# dominated by its random start on a saturated softmax: a few more steps.
SPECIAL = {"apgd": {"steps": 5}, "cw": {"steps": 20}, "cw-impersonation": {"steps": 20}, "jitter": {"steps": 10}}


def fitting(names: list[str]) -> list:
    """``names`` as test parameters: one preset per class by default, the others marked slow."""
    return [pytest.param(n, marks=() if n in FIRST_OF_CLASS else pytest.mark.slow) for n in names]


def fast_overrides(name: str) -> dict:
    fields = {f.name for f in dataclasses.fields(METHODS.entry(name).cls.Config)}
    return {**{k: v for k, v in FAST.items() if k in fields}, **SPECIAL.get(name, {})}


@pytest.fixture(scope="module")
def user(lfw_faces):
    photos = lfw_faces[USER]
    return photos[:3], photos[4:5]  # fit photos, the photo to protect


_protected: dict = {}


def protect(name: str, sface, user, context, seed: int = 0):
    """(method, protector, protected photo), cached per (name, seed)."""
    if (name, seed) not in _protected:
        method = METHODS.create(name, **fast_overrides(name)).bind(context)
        fit, probe = user
        protector = method.fit(fit, [sface], seed)
        _protected[name, seed] = (method, protector, protector.protect(probe))
    return _protected[name, seed]


def test_at_least_thirty_methods_are_available():
    available = [n for n in NAMES if METHODS.entry(n).availability()[0]]
    assert len(available) >= 30, available


@pytest.mark.parametrize("name", NAMES)
def test_description(name):
    row = next(r for r in METHODS.describe() if r["name"] == name)
    assert row["kind"] in ("universal", "per-image")
    assert row["goal"] in GOALS
    assert row["reference"] and row["budget"] != "none declared"


@pytest.mark.parametrize("name", fitting(NAMES))
def test_budget_range_and_determinism(name, sface, user, context):
    method, _, protected = protect(name, sface, user, context)
    clean = user[1]
    assert protected.shape == clean.shape and protected.dtype == clean.dtype
    assert protected.min() >= 0 and protected.max() <= 1
    check_budget(name, method.budget().bounds(), protected, clean)
    assert (protected - clean).abs().max() > 0, "the method left the photo untouched"
    again = METHODS.create(name, **fast_overrides(name)).bind(context).fit(user[0], [sface], 0).protect(clean)
    assert torch.equal(protected, again), "the same seed must give the same photo"


def additive_universal(name: str) -> bool:
    return METHODS.entry(name).cls.kind == "universal" and METHODS.create(name).budget().linf is not None


# Universal L-inf masks need longer fits to move an unseen photo measurably: test_methods_universal.py checks their
# direction over the same registry (every universal method with an L-inf budget) against a random-sign control.
@pytest.mark.parametrize("name", fitting([n for n in NAMES if not additive_universal(n)]))
def test_protection_moves_the_face_away(name, sface, user, context):
    """Under SFace the protected photo is further from its clean self; for methods on the identity classifier,
    the classifier's loss moves the way the goal asks (away from the user, or towards the chosen identity)."""
    method, protector, protected = protect(name, sface, user, context)
    clean = user[1]
    with torch.no_grad():
        cos = (sface.embed(protected) * sface.embed(clean)).sum(1)
    assert (cos < 0.995).all(), f"{name}: cosine to the clean photo {cos.tolist()}"
    if isinstance(method, ClassifierMethod):
        model = method.classifier(user[0], [sface], 0)
        with torch.no_grad():
            before, after = margin(model(clean), model.label), margin(model(protected), model.label)
        # the margin, not the cross-entropy: at a logit scale of 64 the clean photo's loss rounds to 0
        if method.goal == "dodging":
            assert after < before, f"{name}: the user's logit margin {before:.3f} -> {after:.3f}"
        else:
            assert after > before, f"{name}: the target's logit margin {before:.3f} -> {after:.3f}"


def margin(logits: torch.Tensor, label: int) -> float:
    """The label's logit minus the largest other one, summed over the photos."""
    others = torch.cat([logits[:, :label], logits[:, label + 1:]], 1)
    return float((logits[:, label] - others.max(1).values).sum())


@pytest.mark.parametrize("name", fitting(NAMES))
def test_a_method_holds_a_key_exactly_when_its_protectors_do(name, sface, user, context):
    """The harness measures key-holder accuracy for methods that declare a key; a pasted patch has none."""
    method, protector, _ = protect(name, sface, user, context)
    assert method.holds_key == protector.has_key, name
