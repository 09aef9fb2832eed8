"""Verification arithmetic of a calibration: balanced folds, best-accuracy thresholds, k-fold accuracy and
thresholds at a false-accept rate. Pure: arrays in, numbers out (``bench.measures.calibrate`` runs it on LFW).

A pair is accepted as the same person when its cosine similarity is >= the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PairSet:
    """Verification pairs as photo indices: ``pairs`` P x 2, ``same`` (P,) bool, ``fold`` (P,) int."""

    pairs: np.ndarray
    same: np.ndarray
    fold: np.ndarray

    def __len__(self) -> int:
        return len(self.same)

    def select(self, keep: np.ndarray) -> PairSet:
        return PairSet(self.pairs[keep], self.same[keep], self.fold[keep])


def balance_folds(pairs: PairSet, labels: np.ndarray, pools: dict[int, np.ndarray], seed: int) -> PairSet:
    """Add mismatched pairs in each fold until there are as many as matched ones.

    ``labels[i]`` is the identity of photo i; ``pools[f]`` the photo indices of fold f's identities that new
    pairs may use. Two distinct identities of the pool are drawn uniformly, then one photo of each; a pair
    already present (in either order) is drawn again. Each fold has its own generator seeded by (seed, fold),
    so a fold's pairs do not depend on which other folds are present.
    """
    out_pairs, out_same, out_fold = [pairs.pairs], [pairs.same], [pairs.fold]
    for f in np.unique(pairs.fold):
        in_fold = pairs.fold == f
        need = int(pairs.same[in_fold].sum() - (~pairs.same[in_fold]).sum())
        if need <= 0:
            continue
        pool = np.asarray(pools.get(int(f), []), dtype=np.int64)
        by_identity = {ident: pool[labels[pool] == ident] for ident in np.unique(labels[pool])}
        identities = np.array(sorted(by_identity))
        if len(identities) < 2:
            raise ValueError(f"fold {f} has fewer than two identities to draw mismatched pairs from")
        seen = {(min(a, b), max(a, b)) for a, b in pairs.pairs[in_fold].tolist()}
        rng = np.random.default_rng([seed, int(f)])
        added: list[tuple[int, int]] = []
        attempts = 0
        while len(added) < need:
            attempts += 1
            if attempts > 100 * need + 1000:
                raise ValueError(f"fold {f}: cannot draw {need} distinct mismatched pairs from its photos")
            id_a, id_b = rng.choice(identities, size=2, replace=False)
            a = int(rng.choice(by_identity[id_a]))
            b = int(rng.choice(by_identity[id_b]))
            key = (min(a, b), max(a, b))
            if key not in seen:
                seen.add(key)
                added.append((a, b))
        out_pairs.append(np.array(added, dtype=np.int64).reshape(-1, 2))
        out_same.append(np.zeros(need, dtype=bool))
        out_fold.append(np.full(need, f, dtype=pairs.fold.dtype))
    return PairSet(np.concatenate(out_pairs), np.concatenate(out_same), np.concatenate(out_fold))


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs judged right when a pair is accepted iff its score >= threshold."""
    return float(np.mean((np.asarray(scores) >= threshold) == np.asarray(same, dtype=bool)))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold of best accuracy on (scores, same) and that accuracy.

    Candidates lie midway between consecutive distinct sorted scores (and just outside both ends); the first
    best one (lowest threshold) is taken. O(P log P).
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if len(scores) == 0:
        raise ValueError("best_threshold needs at least one pair")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    # rejecting the k lowest scores (k = 0..P): right = mismatched among them + matched among the rest
    mismatched_below = np.concatenate([[0], np.cumsum(~y)])
    matched_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    right = mismatched_below + matched_above
    # a cut between two equal scores is not realisable
    valid = np.ones(len(s) + 1, dtype=bool)
    valid[1:-1] = s[1:] > s[:-1]
    k = int(np.flatnonzero(valid)[np.argmax(right[valid])])
    if k == 0:
        threshold = s[0]
    elif k == len(s):
        threshold = float(np.nextafter(s[-1], np.inf))
    else:
        threshold = (s[k - 1] + s[k]) / 2
    return float(threshold), float(right[k] / len(s))


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out fold: the threshold chosen on the other folds and the accuracy it gives on this one."""
    folds = np.unique(fold)
    if len(folds) < 2:
        raise ValueError("k-fold accuracy needs at least two folds")
    accs, thresholds = [], []
    for f in folds:
        test = fold == f
        thr, _ = best_threshold(scores[~test], same[~test])
        thresholds.append(thr)
        accs.append(accuracy_at(scores[test], same[test], thr))
    return np.array(accs), np.array(thresholds)


def impostor_top_scores(
    embeddings: torch.Tensor, labels: torch.Tensor, k: int, chunk: int = 1024
) -> tuple[torch.Tensor, int]:
    """The ``k`` highest cosine scores over all pairs i < j of different identity (descending) and their count.

    Rows are processed ``chunk`` at a time, so memory stays at chunk x N scores plus the running top k.
    ``embeddings`` are unit-norm N x D; ``labels`` (N,) identity ids on the same device.
    """
    n = len(embeddings)
    top = embeddings.new_empty(0)
    count = 0
    cols = torch.arange(n, device=embeddings.device)
    for start in range(0, n, chunk):
        rows = cols[start : start + chunk]
        block = embeddings[rows] @ embeddings.T
        keep = (cols[None, :] > rows[:, None]) & (labels[None, :] != labels[rows][:, None])
        values = block[keep]
        count += values.numel()
        merged = torch.cat([top, values])
        top = merged.topk(min(k, merged.numel())).values
    return top, count


def threshold_at_far(top_desc: torch.Tensor | np.ndarray, n_impostors: int, far: float) -> float:
    """The threshold accepting at most ``far`` of the impostor pairs (accept iff score >= threshold).

    ``top_desc`` holds the highest impostor scores in descending order, at least floor(far * n) + 1 of them.
    With m = floor(far * n), the threshold lies midway between the m-th and (m+1)-th highest score, so exactly
    m impostors (barring ties) are accepted.
    """
    top = np.asarray(top_desc.cpu() if isinstance(top_desc, torch.Tensor) else top_desc, dtype=np.float64)
    if n_impostors <= 0:
        raise ValueError("no impostor pairs: the photos must cover at least two identities")
    m = int(math.floor(far * n_impostors))
    if len(top) < m + 1:
        raise ValueError(f"need the {m + 1} highest impostor scores for FAR {far}, got {len(top)}")
    if m == 0:
        return float(np.nextafter(top[0], np.inf))
    return float((top[m - 1] + top[m]) / 2)


__all__ = ["PairSet", "balance_folds", "accuracy_at", "best_threshold", "kfold_accuracy", "impostor_top_scores",
           "threshold_at_far"]
