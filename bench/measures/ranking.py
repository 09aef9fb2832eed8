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

from bench.measures.registry import METRICS

_PER_USER = METRICS.headline().per_user_field  # cell -> user -> value, what is resampled
# A rank correlation of two methods is +1 or -1 whatever the data: the split-half check needs three.
MIN_SPLIT_HALF_METHODS = 3

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


def _boot_scores(values: np.ndarray, idx: np.ndarray, score: Score, chunk: int = 100) -> np.ndarray:
    """score() of every replicate (rows of ``idx``), a chunk of replicates at a time: a full suite's users x
    cells matrix (50 x 403) times 2,000 replicates would not fit in memory at once."""
    return np.concatenate([score(values[idx[i:i + chunk]]) for i in range(0, len(idx), chunk)])


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
    diffs = _boot_scores(a, idx, score) - _boot_scores(b, idx, score)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return Difference(point, (float(lo), float(hi)), a.shape[0])


def tied_ranks(matrices: dict[str, np.ndarray], score: Score = worst_cell, n_boot: int = 2000,
               seed: int = 0) -> dict[str, int]:
    """Competition ranks with ties: a method's rank is 1 + the number of methods *significantly* better than it
    (paired bootstrap interval of the difference excludes 0). Methods no test tells apart share a rank."""
    names = list(matrices)
    values = {n: np.asarray(matrices[n], np.float64) for n in names}
    users = {v.shape[0] for v in values.values()}
    if len(users) > 1:
        raise ValueError(f"tied ranks need every method on the same users, got user counts {sorted(users)}")
    # one draw of users for all: each method's replicate scores once, every pair's paired difference from them
    idx = _replicates(users.pop(), n_boot, seed)
    boots = {n: _boot_scores(v, idx, score) for n, v in values.items()}
    points = {n: float(score(v[None])[0]) for n, v in values.items()}
    better = {n: 0 for n in names}
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            lo, hi = np.quantile(boots[x] - boots[y], [0.025, 0.975])
            if not lo <= 0.0 <= hi:  # significant
                better[y if points[x] > points[y] else x] += 1
    return {n: 1 + better[n] for n in names}


def score_interval(values: np.ndarray, score: Score = worst_cell, n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05) -> tuple[float, float]:
    """Percentile-bootstrap interval (over users) of one method's score on its U x C matrix."""
    values = np.asarray(values, np.float64)
    if values.shape[0] < 2:
        point = float(score(values[None])[0])
        return point, point
    scores = _boot_scores(values, _replicates(values.shape[0], n_boot, seed), score)
    lo, hi = np.quantile(scores, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def user_matrix(per_user: dict[str, dict[str, float]], cells: list[str], users: list[str]) -> np.ndarray:
    """U x C matrix from ``cell -> user -> value`` (a leaderboard entry's per-user headline PSR, ``per_user_top1``); NaN where missing."""
    return np.array([[per_user.get(c, {}).get(u, np.nan) for c in cells] for u in users], dtype=np.float64)


def shared_cells_users(entries: list[dict]) -> tuple[list[str], list[str]]:
    """The cells every entry has per-user values for, and the users every one of them has in all those cells:
    what entries are compared on, paired."""
    cells = sorted(set.intersection(*(set(e[_PER_USER]) for e in entries))) if entries else []
    users = sorted(set.intersection(*(set(e[_PER_USER][c]) for e in entries for c in cells))) if cells else []
    return cells, users


def _rankable(entries: list[dict], scenario: str) -> list[dict]:
    """The entries of a scenario that can be ranked: finished, with per-user values."""
    return [e for e in entries if e["scenario"] == scenario and e["status"] == "ok" and e.get(_PER_USER)]


def _users_of(entry: dict) -> set[str]:
    return {u for per in entry[_PER_USER].values() for u in per}


def ranking_group(ranked: list[dict]) -> tuple[list[dict], list[dict]]:
    """The entries ranked together (those judged on the most users) and the rest (judged on fewer: a method too
    costly for the machine, protected for some of the users only). A row's scores are means over its own users,
    so a row on 2 users is not ranked against rows on 10, nor are the 10-user rows ranked on those 2 only."""
    most = max((len(_users_of(e)) for e in ranked), default=0)
    return [e for e in ranked if len(_users_of(e)) == most], [e for e in ranked if len(_users_of(e)) < most]


def rank_entries(entries: list[dict], n_boot: int = 2000, seed: int = 0) -> None:
    """Rank a leaderboard's entries in place, per scenario: ``rank`` (tied: 1 + the methods significantly better
    by a paired bootstrap over the users and cells every ranked method has) and ``psr_top1_worst_ci`` (the
    primary score's bootstrap interval over the entry's own users). Only the entries judged on the most users
    are ranked (``ranking_group``); one judged on fewer gets ``unranked``, which says on how many, instead of a
    rank. Entries without per-user values (failed, unavailable, or published before they were kept) get neither."""
    for scenario in dict.fromkeys(e["scenario"] for e in entries):
        ranked = _rankable(entries, scenario)
        for e in ranked:
            e.pop("rank", None)  # a merged board is ranked again: no rank or note of an earlier grouping stays
            e.pop("unranked", None)
            own = e[_PER_USER]
            users = sorted(_users_of(e))
            e[METRICS.headline().ci_field] = list(score_interval(user_matrix(own, sorted(own), users),
                                                                 n_boot=n_boot, seed=seed))
        group, fewer = ranking_group(ranked)
        cells, users = shared_cells_users(group)
        for e in fewer:
            e["unranked"] = (f"judged on {len(_users_of(e))} of the {len(users)} users the ranked rows share: "
                             "not ranked against them")
        if not users:
            continue
        ranks = tied_ranks({i: user_matrix(e[_PER_USER], cells, users) for i, e in enumerate(group)},
                           n_boot=n_boot, seed=seed)
        for i, e in enumerate(group):
            e["rank"] = ranks[i]


def stability(entries: list[dict], scenario: str = "probe", seed: int = 0) -> dict | None:
    """Split-half check of a leaderboard's order: the methods ranked on two disjoint random halves of the users,
    over every shared cell and over the cells of targets no surrogate was (``unseen_targets``); Spearman's rho
    of the two halves' primary scores. None with fewer than 2 ranked methods (no order to check); with 2 methods
    (rho can only be +1 or -1) or fewer than 4 shared users, ``left_out`` says why there is no check."""
    ranked = ranking_group(_rankable(entries, scenario))[0]
    cells, users = shared_cells_users(ranked)
    if len(ranked) < 2:
        return None
    why = (f"it needs at least {MIN_SPLIT_HALF_METHODS} ranked methods (with {len(ranked)}, Spearman's rho can only "
           "be +1 or -1)" if len(ranked) < MIN_SPLIT_HALF_METHODS else
           f"it needs at least 4 users every method was judged on ({len(users)} here)" if len(users) < 4 else None)
    if why:
        return {"scenario": scenario, "users": len(users), "methods": len(ranked), "left_out": why}
    unseen = set.intersection(*(set(e.get("unseen_targets") or []) for e in ranked))
    out: dict = {"scenario": scenario, "users": len(users), "methods": len(ranked)}
    for name, keep in (("all", cells), ("unseen", [c for c in cells if c.split("|", 1)[0] in unseen])):
        if not keep:
            out[name] = None
            continue
        half = split_half({e["method"]: user_matrix(e[_PER_USER], keep, users) for e in ranked}, seed=seed)
        out[name] = {"rank_correlation": half.rank_correlation, "cells": len(keep),
                     "halves": [len(h) for h in half.halves], "scores": list(half.scores)}
    return out


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


__all__ = ["Difference", "SplitHalf", "mean_cell", "paired_difference", "rank_entries", "ranking_group", "score_interval", "spearman",
           "shared_cells_users", "split_half", "stability", "tied_ranks", "user_matrix", "worst_cell"]
