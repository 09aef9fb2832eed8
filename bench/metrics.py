"""Protection success rate (PSR) and its confidence interval; users are the unit.

Probe scenario (query side, as in OPOM / Chameleon / FaceCloak): the recogniser's gallery holds clean photos of
every identity (one template per identity: the normalised mean of its gallery embeddings); each protected user's
held-out photos are the queries.

- identification PSR@k: share of protected queries whose true identity is not among the k best-scoring gallery
  identities (ties count against the protection: an identity scoring equal to the truth does not push it down).
- verification PSR at FAR f: share of protected queries whose cosine similarity to the user's clean template is
  below the target's threshold calibrated at FAR f on LFW.

Every PSR is the mean of per-user PSRs (each user weighs the same, whatever their photo count) with a 95%
percentile bootstrap interval over users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def identity_templates(embeddings: torch.Tensor, labels: list[str]) -> tuple[torch.Tensor, list[str]]:
    """One unit-norm template per identity: the normalised mean of its embeddings. Returns (I x D, names)."""
    names = sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    idx = torch.tensor([index[lbl] for lbl in labels], device=embeddings.device)
    sums = torch.zeros(len(names), embeddings.shape[1], device=embeddings.device, dtype=embeddings.dtype)
    sums.index_add_(0, idx, embeddings)
    return F.normalize(sums, dim=1), names


def true_identity_rank(queries: torch.Tensor, templates: torch.Tensor, true_index: int) -> torch.Tensor:
    """Rank (1 = best) of the true identity for each query; identities scoring >= the truth rank ahead of it."""
    scores = queries @ templates.T
    true = scores[:, true_index : true_index + 1]
    others = torch.cat([scores[:, :true_index], scores[:, true_index + 1 :]], dim=1)
    return 1 + (others >= true).sum(1)


@dataclass
class UserOutcome:
    """Per-user protection outcome on one target: fractions in [0, 1] over the user's queries."""

    user: str
    queries: int
    psr: dict[str, float]  # e.g. {"top1": .., "top5": .., "far1e-3": ..}


def user_outcome(
    user: str,
    queries: torch.Tensor,
    templates: torch.Tensor,
    names: list[str],
    thresholds: dict[str, float] | None = None,
    ks: tuple[int, ...] = (1, 5),
) -> UserOutcome:
    t = names.index(user)
    rank = true_identity_rank(queries, templates, t)
    psr = {f"top{k}": float((rank > k).float().mean()) for k in ks}
    sims = queries @ templates[t]
    for far, thr in sorted((thresholds or {}).items()):
        psr[far] = float((sims < thr).float().mean())
    return UserOutcome(user, len(queries), psr)


def bootstrap_ci(
    per_user: list[float] | np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users (resampling users with replacement)."""
    values = np.asarray(per_user, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    if len(values) == 1:
        return (float(values[0]), float(values[0]))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def summarise(per_user: list[float]) -> dict[str, float | list[float]]:
    """Mean over users with its 95% bootstrap interval."""
    lo, hi = bootstrap_ci(per_user)
    return {"mean": float(np.mean(per_user)) if per_user else float("nan"), "ci": [lo, hi]}
