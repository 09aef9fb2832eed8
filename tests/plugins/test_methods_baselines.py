"""The baselines on the identity-classifier adapter (torchattacks attacks, universal transfer masks, region
patches) and the obfuscations: what is specific to them, on real LFW faces with the SFace surrogate.

Budget, range, determinism and loss direction of every method are in test_methods_shared.py.
"""

from __future__ import annotations

import pytest
import torch

from bench.data.canvas import CANVAS_SIZE, CANVAS_TEMPLATE, FACE_BOX
from bench.registry import METHODS, TARGETS
from bench.run.budget import check_budget
from bench.run.context import ContextError, Need
from methods._classifier import seeded
from methods._regions import REGIONS, region_area, region_map
from methods.base import Budget

USER = "Colin_Powell"
SMALL_BANK = {"bank_identities": 6, "bank_photos": 1}


@pytest.fixture(scope="module")
def user(lfw_faces):
    photos = lfw_faces[USER]
    return photos[:3], photos[4:6]


@pytest.fixture(scope="module")
def classifier(sface, user, context):
    return METHODS.create("mi-fgsm", **SMALL_BANK).bind(context).classifier(user[0], [sface], seed=0)


def test_classifier_recognises_the_user_and_the_bank(classifier, sface, user, context):
    """Clean held-out photos of the user are classified as the user; each bank identity's own photos as itself."""
    with torch.no_grad():
        logits = classifier(user[1])
    assert logits.shape == (2, 7) and classifier.names[-1] == "user"
    assert (logits.argmax(1) == classifier.user_index).all(), logits
    assert classifier.label == classifier.user_index
    method = METHODS.create("mi-fgsm", **SMALL_BANK).bind(context)
    bank = method.identity_bank()
    with torch.no_grad():
        own = classifier(bank.canvases).argmax(1)
    assert (own == bank.owner).float().mean() >= 0.8, own


def test_impersonation_target_is_a_bank_identity_fixed_by_the_seed(sface, user, context):
    method = METHODS.create("mi-fgsm-impersonation", **SMALL_BANK).bind(context)
    labels = [method.classifier(user[0], [sface], seed).label for seed in (0, 0, 1, 2, 3)]
    assert labels[0] == labels[1]
    assert all(0 <= label < 6 for label in labels) and len(set(labels)) > 1


def test_impersonation_moves_towards_the_target(sface, user, context):
    method = METHODS.create("mi-fgsm-impersonation", steps=4, **SMALL_BANK).bind(context)
    protector = method.fit(user[0], [sface], seed=0)
    protected = protector.protect(user[1])
    model = protector.model
    with torch.no_grad():
        before, after = model(user[1]).softmax(1), model(protected).softmax(1)
    assert (after[:, model.label] > before[:, model.label]).all()
    assert protector.info()["label"] == model.names[model.label] != "user"


def test_the_bank_comes_from_the_run_context_it_declares(sface, user):
    method = METHODS.create("mi-fgsm", **SMALL_BANK)
    assert method.needs() == [Need("identity_bank", (6, 1))]
    with pytest.raises(ContextError, match="not bound to a run context"):
        method.fit(user[0], [sface], seed=0)


def test_seeded_restores_the_callers_rng():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded(123, "cpu"):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with seeded(123, "cpu"):
        assert torch.equal(torch.rand(3), inside)


def test_attacks_without_a_targeted_mode_refuse_impersonation():
    for name in ("pi-fgsm", "apgd"):
        with pytest.raises(ValueError, match="targeted"):
            METHODS.create(name, goal="impersonation")
    with pytest.raises(Exception, match="goal"):
        METHODS.create("mi-fgsm", goal="hiding")


def test_square_queries_a_black_box_target(user, context):
    """Square needs no gradients: it runs on OpenCV's SFace, a black box, and stays in its L-inf ball."""
    target = TARGETS.create("sface-cv2")
    ok, reason = type(target).availability()
    if not ok:
        pytest.skip(f"sface-cv2 unavailable: {reason}")
    method = METHODS.create("square", queries=15, **SMALL_BANK).bind(context)
    clean = user[1][:1]
    protected = method.fit(user[0], [target], seed=0).protect(clean)
    assert 0 < (protected - clean).abs().max() <= method.config.epsilon + 1e-6
    with pytest.raises(ValueError, match="differentiable"):
        METHODS.create("mi-fgsm", **SMALL_BANK).bind(context).fit(user[0], [target], seed=0)


def test_square_is_repeatable_and_leaves_the_callers_rng_alone(user, context, sface):
    """Square's random search (torchattacks) draws from torch's global RNG: seeded by the protector's seed for its
    own duration, so a seed gives the same photos and the caller's RNG goes on as if nothing ran."""
    method = METHODS.create("square", queries=10, **SMALL_BANK).bind(context)
    protector = method.fit(user[0], [sface], seed=3)
    clean = user[1][:1]
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    first = protector.protect(clean)
    assert torch.equal(torch.rand(4), expected)
    assert torch.equal(protector.protect(clean), first) and not torch.equal(first, clean)


def test_regions_sit_on_the_face():
    a = FACE_BOX[0]
    for name in REGIONS:
        region = region_map(name)
        assert region.shape == (1, 1, CANVAS_SIZE, CANVAS_SIZE) and set(region.unique().tolist()) == {0.0, 1.0}
        assert 0.02 < region_area(name) < 0.08, (name, region_area(name))
        # left-right symmetric about the eyes (the template is to within a pixel)
        assert (region != region.flip(-1)).float().mean() < 0.02, name
    glasses, band = region_map("eyeglass-frame"), region_map("forehead-band")
    rows = glasses.squeeze().nonzero()[:, 0]
    nose_y = CANVAS_TEMPLATE[2][1]
    assert a < rows.min() and rows.max() < nose_y, "the frames sit between the top of the face box and the nose"
    assert band.squeeze().nonzero()[:, 0].max() < rows.min(), "the forehead band lies above the glasses"
    assert region_map("eye-bar", 112).shape[-1] == 112


def test_region_patch_changes_only_its_region(sface, user, context):
    method = METHODS.create("adv-glasses", iterations=3, **SMALL_BANK).bind(context)
    protector = method.fit(user[0], [sface], seed=0)
    protected = protector.protect(user[1])
    region = protector.state()["region"].bool().expand_as(protected)
    assert torch.equal(protected[~region], user[1][~region])
    assert not protector.has_key
    budget = method.budget()
    assert budget.linf is None and budget.area == pytest.approx(region_area("eyeglass-frame"))
    check_budget(method.name, budget.bounds(), protected, user[1])
    # the same colours in every photo: the patch is universal
    assert torch.equal(protected[0][region[0]], protected[1][region[1]])


def test_the_glasses_dodging_loss_keeps_its_direction_where_the_softmax_loss_saturates():
    """Pure math. On the adapter's scale-64 logits a recognised user's probability rounds to 1 in float32: the
    softmax loss's gradient at the user's logit is then exactly zero (what left the former patch unoptimised).
    The form the patch ascends keeps it, and points the way the softmax loss does where that one is finite."""
    import torch.nn.functional as F

    from methods.region_patch import softmax_loss

    class Logits:  # the classifier's interface: the inputs are the logits, the user is the last class
        label = 2

        def __call__(self, x):
            return 64 * x

        def labels(self, n):
            return torch.full((n,), self.label)

    for cosines, saturated in (([0.1, 0.2, 0.9], True), ([0.5, 0.55, 0.6], False)):
        x = torch.tensor([cosines], requires_grad=True)
        F.cross_entropy(64 * x, Logits().labels(1)).backward()
        softmax_grad, x.grad = x.grad.clone(), None
        loss, prob = softmax_loss(Logits(), x, targeted=False)
        loss.sum().backward()
        assert x.grad[0, 2] < 0, "ascending it lowers the user's logit"
        if saturated:
            assert prob.item() == 1.0 and softmax_grad[0, 2] == 0
        else:
            direction = softmax_grad / softmax_grad.abs().max()
            assert torch.allclose(x.grad / x.grad.abs().max(), direction, atol=1e-5)


def test_budget_text_and_bounds():
    assert Budget(note="unbounded").text() == "unbounded" and Budget(l2=2.0).text() == "l2 2"
    assert Budget(area=0.1, note="colours unbounded").bounds() == {"area": 0.1}


def test_obfuscations_on_a_real_face(user):
    clean = user[1]
    blurred = METHODS.create("gaussian-blur").fit(user[0], [], 0).protect(clean)
    flat = torch.full_like(clean, 0.4)
    assert torch.allclose(METHODS.create("gaussian-blur").fit(user[0], [], 0).protect(flat), flat, atol=1e-6)
    assert blurred.diff(dim=-1).abs().mean() < 0.6 * clean.diff(dim=-1).abs().mean()
    mosaic = METHODS.create("pixelate").fit(user[0], [], 0).protect(clean)
    assert torch.equal(mosaic[..., :8, :8], mosaic[..., :1, :1].expand_as(mosaic[..., :8, :8]))
    assert torch.allclose(mosaic[..., :8, :8].mean((-1, -2)), clean[..., :8, :8].mean((-1, -2)), atol=1e-6)
    noisy = METHODS.create("gaussian-noise").fit(user[0], [], 3).protect(clean)
    assert (noisy - clean).abs().max() <= 24 / 255 + 1e-6
    assert (noisy - clean).std() > 5 / 255
    bar = METHODS.create("eye-bar").fit(user[0], [], 0).protect(clean)
    inside = region_map("eye-bar").bool().expand_as(clean)
    assert (bar[inside] == 0).all() and torch.equal(bar[~inside], clean[~inside])
