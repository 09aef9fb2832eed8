"""Protection success rate (PSR) and its confidence interval; users are the unit.

Probe scenario (query side, as in OPOM / Chameleon / FaceCloak): the recogniser's gallery holds clean photos of
every identity (one template per identity: the normalised mean of its gallery embeddings); each protected user's
held-out photos are the queries.

- identification PSR@k: share of protected queries whose true identity is not among the k best-scoring gallery
  identities (ties count against the protection: an identity scoring equal to the truth does not push it down).
- verification PSR at FAR f: share of protected queries whose cosine similarity to the user's clean template is
  below the target's threshold calibrated at FAR f on LFW.

Paper protocols (``Suite.protocol``, scoring in ``probe_outcome``):
- ``templates`` (ours, above): one template per gallery identity.
- ``opom-pairs`` (OPOM's ``test_privacy.py``): every protected query is ranked against ONE clean photo of the
  user (the "mate") plus the distractors, for every query/mate pair; PSR@k = share of pairs whose mate is not in
  the top k (k = 1, 5, 10), verification PSR = share of pairs whose similarity is below the threshold. The
  reference takes the mate among the user's other test photos (j != i) and 10,000 MegaFace distractors; the run
  takes the user's clean gallery photos as mates and every gallery photo of the other identities as distractors
  (``pairs_outcome`` also takes the reference's form: mates = the clean queries, ``exclude_same=True``).

Linkage scenario (tracker side, as in Protego, Wang et al. 2025): a tracker holds everyone's posted photos and
links them to each other, with no clean gallery. For each posted photo it ranks every other posted photo by cosine
similarity; the photo is linked at k when one of the user's own other posts is among the k nearest (ties count
against the protection). PSR-linkage@k = share of a user's posts not linked. The anchored variant adds one clean
photo of every user to what the tracker holds (``linkage_outcomes(anchors=...)``); a user's anchor counts as their
own. A user with a single post and no anchor has nothing to be linked to: that post counts as not linked.

Every PSR is the mean of per-user PSRs (each user weighs the same, whatever their photo count) with a 95%
percentile bootstrap interval over users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def identity_sums(embeddings: torch.Tensor, labels: list[str]) -> tuple[torch.Tensor, list[str]]:
    """Each identity's embeddings summed (I x D, names sorted): a template before normalisation."""
    names = sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    idx = torch.tensor([index[lbl] for lbl in labels], device=embeddings.device)
    sums = torch.zeros(len(names), embeddings.shape[1], device=embeddings.device, dtype=embeddings.dtype)
    sums.index_add_(0, idx, embeddings)
    return sums, names


def identity_templates(embeddings: torch.Tensor, labels: list[str]) -> tuple[torch.Tensor, list[str]]:
    """One unit-norm template per identity: the normalised mean of its embeddings. Returns (I x D, names)."""
    sums, names = identity_sums(embeddings, labels)
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


def enrolled_outcomes(sums: torch.Tensor, names: list[str], posts: torch.Tensor, owners: list[str],
                      enrolled: torch.Tensor, thresholds: dict[str, float] | None = None,
                      ks: tuple[int, ...] = (1, 5)) -> dict[str, UserOutcome]:
    """Posted photos scored as probes against a gallery that grew by enrolling some of them (a dynamic gallery,
    ``attacks.dynamic_gallery``): ``sums`` (I x D) each identity's summed unit embeddings before enrolment,
    ``posts`` (N x D) the posted photos, ``owners`` whose each is, ``enrolled`` (N,) the identity each joined (-1:
    none). Each photo meets the grown templates with its own contribution left out (a photo never finds itself);
    with nothing enrolled this is ``user_outcome`` on the templates of ``sums``."""
    joined = enrolled >= 0
    grown = sums.clone()
    grown.index_add_(0, enrolled[joined], posts[joined])
    scores = posts @ F.normalize(grown, dim=1).T
    rows = joined.nonzero().flatten()
    own_left_out = F.normalize(grown[enrolled[rows]] - posts[rows], dim=1)
    scores[rows, enrolled[rows]] = (posts[rows] * own_left_out).sum(1)
    out = {}
    for user in dict.fromkeys(owners):
        mine = torch.tensor([o == user for o in owners], device=posts.device)
        t = names.index(user)
        user_scores = scores[mine]
        true = user_scores[:, t : t + 1]
        rank = 1 + (torch.cat([user_scores[:, :t], user_scores[:, t + 1 :]], 1) >= true).sum(1)
        psr = {f"top{k}": float((rank > k).float().mean()) for k in ks}
        for far, thr in sorted((thresholds or {}).items()):
            psr[far] = float((true[:, 0] < thr).float().mean())
        out[user] = UserOutcome(user, int(mine.sum()), psr)
    return out


def gallery_thresholds(gallery: torch.Tensor, labels: list[str], fars: tuple[float, ...] = (1e-2, 1e-3)
                       ) -> dict[str, float]:
    """Thresholds a recogniser can set on its own gallery where the target has no LFW calibration: at FAR f, the
    (1 - f) quantile of the impostor scores, every gallery photo against every other identity's template."""
    sums, names = identity_sums(gallery, labels)
    scores = gallery @ F.normalize(sums, dim=1).T
    own = torch.tensor([names.index(lbl) for lbl in labels], device=gallery.device)
    impostor = scores.masked_fill(F.one_hot(own, len(names)).bool(), float("nan")).flatten()
    impostor = impostor[~impostor.isnan()]
    return {f"far{far:.0e}".replace("e-0", "e-"): float(torch.quantile(impostor.double(), 1 - far)) for far in fars}


PROTOCOLS = ("templates", "opom-pairs")


def pair_ranks(queries: torch.Tensor, mates: torch.Tensor, distractors: torch.Tensor) -> torch.Tensor:
    """Q x M: rank (1 = best) of mate m among {mate m} + distractors for query q; distractors scoring >= the
    mate rank ahead of it (ties count against the protection, as in ``true_identity_rank``)."""
    mate_scores = queries @ mates.T
    distractor_scores = queries @ distractors.T
    return 1 + (distractor_scores[:, None, :] >= mate_scores[:, :, None]).sum(-1)


def pairs_outcome(
    user: str,
    queries: torch.Tensor,
    mates: torch.Tensor,
    distractors: torch.Tensor,
    thresholds: dict[str, float] | None = None,
    ks: tuple[int, ...] = (1, 5, 10),
    exclude_same: bool = False,
) -> UserOutcome:
    """OPOM's all-pairs protocol for one user: fractions over every (query, mate) pair.

    ``exclude_same``: the mates are the clean versions of the queries (row i = query i) and pair (i, i) is left
    out, as OPOM's reference does.
    """
    if exclude_same and len(mates) != len(queries):
        raise ValueError(f"exclude_same needs one mate per query, got {len(mates)} mates for {len(queries)} queries")
    valid = torch.ones(len(queries), len(mates), dtype=torch.bool, device=queries.device)
    if exclude_same:
        valid.fill_diagonal_(False)
    if not valid.any():
        raise ValueError(f"{user}: no query/mate pair to score ({len(queries)} queries, {len(mates)} mates)")
    rank = pair_ranks(queries, mates, distractors)[valid]
    psr = {f"top{k}": float((rank > k).float().mean()) for k in ks}
    sims = (queries @ mates.T)[valid]
    for far, thr in sorted((thresholds or {}).items()):
        psr[far] = float((sims < thr).float().mean())
    return UserOutcome(user, len(queries), psr)


def probe_outcome(
    protocol: str,
    user: str,
    queries: torch.Tensor,
    gallery: torch.Tensor,
    labels: list[str],
    thresholds: dict[str, float] | None = None,
) -> UserOutcome:
    """Probe-scenario outcome of one user's queries against a clean gallery (one embedding per photo, ``labels``
    its identities), under ``protocol``: ``templates`` or ``opom-pairs`` (the user's gallery photos are the
    mates, every other gallery photo a distractor)."""
    if protocol == "templates":
        templates, names = identity_templates(gallery, labels)
        return user_outcome(user, queries, templates, names, thresholds)
    if protocol == "opom-pairs":
        own = torch.tensor([label == user for label in labels], device=gallery.device)
        return pairs_outcome(user, queries, gallery[own], gallery[~own], thresholds)
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def linkage_outcomes(posts: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor] | None = None,
                     ks: tuple[int, ...] = (1, 5)) -> dict[str, UserOutcome]:
    """Linkage outcome per user: ``posts`` maps each user to the embeddings of their posted photos (N_u x D, unit
    norm); ``anchors`` (the anchored variant) to the embeddings the tracker also holds of them (clean photos).
    For every post, the rank (1 = best) of the user's nearest own other photo among all other photos held."""
    users = list(posts)
    held = [posts[u] for u in users] + [anchors[u] for u in users] if anchors else [posts[u] for u in users]
    owner = torch.cat([torch.full((len(x),), i) for i, x in enumerate(held)]) % len(users)
    everything = torch.cat(held)
    owner = owner.to(everything.device)
    sims = everything @ everything.T
    sims.fill_diagonal_(float("-inf"))  # a photo is never its own neighbour
    out, start = {}, 0
    for i, user in enumerate(users):
        rows = sims[start : start + len(posts[user])]
        start += len(posts[user])
        own = owner == i
        best_own = rows.masked_fill(~own, float("-inf")).max(1).values
        rank = 1 + (rows.masked_fill(own, float("-inf")) >= best_own[:, None]).sum(1)
        rank = torch.where(torch.isinf(best_own), torch.full_like(rank, len(everything)), rank)  # nothing to link to
        psr = {f"top{k}": float((rank > k).float().mean()) for k in ks}
        out[user] = UserOutcome(user, len(rank), psr)
    return out


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
