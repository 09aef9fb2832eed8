"""Checks every face recognition target must pass on real faces (called by the per-family test files)."""

from __future__ import annotations

import torch


def check_shape_norm_determinism(target, x: torch.Tensor) -> None:
    with torch.no_grad():
        a = target.embed(x)
        b = target.embed(x)
    assert a.shape == (len(x), target.embedding_dim)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(len(x)), atol=1e-5, rtol=0)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert torch.isfinite(a).all()


def check_gradient_reaches_canvas(target, x: torch.Tensor) -> None:
    canvas = x[:2].clone().requires_grad_(True)
    emb = target.embed(canvas)
    (emb[0] @ emb[1]).backward()
    g = canvas.grad
    assert g is not None and torch.isfinite(g).all()
    # the face region drives the gradient; the canvas corners lie outside every framing
    assert g[..., 60:160, 60:160].abs().sum() > 0
    assert g[..., :8, :8].abs().sum() == 0


def check_same_person_closer(target, names: list[str], x: torch.Tensor) -> None:
    with torch.no_grad():
        e = target.embed(x)
    sim = e @ e.T
    idx = {n: i for i, n in enumerate(names)}
    for person in ("person_a", "person_b"):
        i, j = idx[f"{person}_1"], idx[f"{person}_2"]
        others = [k for n, k in idx.items() if not n.startswith(person)]
        worst = max(float(sim[i, others].max()), float(sim[j, others].max()))
        assert float(sim[i, j]) > worst, f"{target.name}: {person} {float(sim[i, j]):.3f} vs impostor {worst:.3f}"


def check_lfw_identities_cluster(target, lfw_faces: dict[str, torch.Tensor]) -> None:
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
