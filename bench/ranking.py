"""How sure a ranking is: paired bootstrap over users, ranks with ties, split-half stability.

Users are the unit of every interval here (PROTOCOL: a PSR's uncertainty comes from who was drawn). A method's
score on a set of users is a function of its users x cells matrix of per-user PSRs (cells = target x adversary),
e.g. the worst cell's mean (the leaderboard's primary score) or the mean over cells. Two methods judged on the
same users are compared *paired*: every bootstrap replicate draws one set of users and scores both methods on
it, so the spread of the users drawn cancels out of their difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Score = Callable[[np.ndarray], np.ndarray]  # (B x U x C) per-user values of B replicates -> (B,) scores


def worst_cell(values: np.ndarray) -> np.ndarray:
    """The primary score: the smallest cell mean (a protection is as good as the recogniser that beats it)."""
    return np.nanmean(values, axis=-2).min(axis=-1)


def mean_cell(values: np.ndarray) -> np.ndarray:
    return np.nanmean(values, axis=(-2, -1))


@dataclass(frozen=True)
class Difference:
    mean: float  # score(a) - score(b) on all users
    ci: tuple[float, float]  # 95% paired bootstrap interval
    users: int

    @property
    def significant(self) -> bool:
        return not (self.ci[0] <= 0.0 <= self.ci[1])


def _replicates(users: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, users, size=(n_boot, users))


def paired_difference(a: np.ndarray, b: np.ndarray, score: Score = worst_cell, n_boot: int = 2000,
                      seed: int = 0, alpha: float = 0.05) -> Difference:
    """score(a) - score(b) with its paired percentile-bootstrap interval; ``a`` and ``b`` are U x C matrices
    over the same users (rows) and cells (columns)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"paired comparison needs two users x cells matrices of one shape, got {a.shape}, {b.shape}")
    point = float(score(a[None])[0] - score(b[None])[0])
    if a.shape[0] == 1:
        return Difference(point, (point, point), 1)
    idx = _replicates(a.shape[0], n_boot, seed)
    diffs = score(a[idx]) - score(b[idx])
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return Difference(point, (float(lo), float(hi)), a.shape[0])


def tied_ranks(matrices: dict[str, np.ndarray], score: Score = worst_cell, n_boot: int = 2000,
               seed: int = 0) -> dict[str, int]:
    """Competition ranks with ties: a method's rank is 1 + the number of methods *significantly* better than it
    (paired bootstrap interval of the difference excludes 0). Methods no test tells apart share a rank."""
    names = list(matrices)
    better = {n: 0 for n in names}
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            d = paired_difference(matrices[x], matrices[y], score, n_boot, seed)
            if d.significant:
                better[y if d.mean > 0 else x] += 1
    return {n: 1 + better[n] for n in names}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(x) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


@dataclass(frozen=True)
class SplitHalf:
    halves: tuple[list[int], list[int]]  # user indices
    scores: tuple[dict[str, float], dict[str, float]]
    rank_correlation: float  # Spearman's rho of the two halves' scores


def split_half(matrices: dict[str, np.ndarray], score: Score = worst_cell, seed: int = 0) -> SplitHalf:
    """Score every method on two disjoint random halves of the users; how alike are the two orders?"""
    users = {m.shape[0] for m in matrices.values()}
    if len(users) != 1:
        raise ValueError(f"split-half needs every method on the same users, got user counts {sorted(users)}")
    (n,) = users
    if n < 2:
        raise ValueError("split-half needs at least 2 users")
    order = np.random.default_rng(seed).permutation(n)
    first, second = sorted(order[: n // 2].tolist()), sorted(order[n // 2:].tolist())
    scores = tuple({name: float(score(m[idx][None])[0]) for name, m in matrices.items()} for idx in (first, second))
    names = list(matrices)
    rho = spearman([scores[0][k] for k in names], [scores[1][k] for k in names])
    return SplitHalf((first, second), scores, rho)


__all__ = ["Difference", "SplitHalf", "mean_cell", "paired_difference", "spearman", "split_half", "tied_ranks",
           "worst_cell"]
