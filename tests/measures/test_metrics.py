"""PSR math on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.measures.psr import (
    bootstrap_ci,
    identity_templates,
    pair_ranks,
    pairs_outcome,
    probe_outcome,
    summarise,
    true_identity_rank,
    user_outcome,
)


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_templates_are_normalised_means_sorted_by_name():
    emb = unit([1, 0], [0, 1], [1, 0], [1, 1])
    templates, names = identity_templates(emb, ["b", "a", "b", "a"])
    assert names == ["a", "b"]
    expected_a = F.normalize(emb[1] + emb[3], dim=0)
    assert torch.allclose(templates[0], expected_a) and torch.allclose(templates[1], unit([1, 0])[0])


def test_rank_counts_ties_against_the_protection():
    templates = unit([1, 0], [0, 1], [1, 0])  # identities 0 and 2 identical
    queries = unit([1, 0], [0, 1], [-1, 0.1])
    assert true_identity_rank(queries, templates, 0).tolist() == [2, 3, 3]
    assert true_identity_rank(queries, templates, 1).tolist() == [3, 1, 1]


def test_user_outcome_topk_and_verification():
    # Gallery of 6 identities; user "u" is at index 0 after sorting
    names = ["u", "v", "w", "x", "y", "z"]
    templates = torch.eye(6)
    # query 1: best match u (rank 1); query 2: u ranked 3rd; query 3: u ranked 6th
    queries = torch.tensor([
        [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],
        [0.3, 0.5, 0.4, 0.0, 0.0, 0.1],
        [0.0, 0.5, 0.4, 0.3, 0.2, 0.1],
    ])
    out = user_outcome("u", queries, templates, names, thresholds={"far1e-3": 0.35})
    assert out.queries == 3
    assert out.psr["top1"] == pytest.approx(2 / 3)
    assert out.psr["top5"] == pytest.approx(1 / 3)
    # similarity to u's template: 0.9, 0.3, 0.0 -> below 0.35 for two of three
    assert out.psr["far1e-3"] == pytest.approx(2 / 3)


def test_bootstrap_interval_is_deterministic_and_brackets_the_mean():
    per_user = [1.0, 0.5, 0.0, 1.0, 0.75]
    lo, hi = bootstrap_ci(per_user)
    assert (lo, hi) == bootstrap_ci(per_user)
    assert lo <= np.mean(per_user) <= hi and 0 <= lo < hi <= 1
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    s = summarise([1.0, 1.0, 1.0])
    assert s["mean"] == 1.0 and s["ci"] == [1.0, 1.0]


def test_pair_ranks_hand_computed():
    queries = unit([1, 0], [0, 1])
    mates = unit([1, 0.1], [0, 1])
    distractors = unit([1, 0], [1, 1], [-1, 0])
    # query 0 scores mate 0 below distractor [1, 0] (0.995 < 1): rank 2; mate 1 (0) below [1,0] and [1,1]: 3,
    # tied with nothing else ([-1, 0] scores -1). query 1: mate 0 scores 0.0995, distractor [1, 1] 0.707 and
    # [1, 0] 0 -> rank 2; mate 1 scores 1, best: rank 1.
    assert pair_ranks(queries, mates, distractors).tolist() == [[2, 3], [2, 1]]
    # a distractor equal to the mate ranks ahead of it
    assert pair_ranks(unit([1, 0]), unit([1, 0]), unit([1, 0])).tolist() == [[2]]


def test_pairs_outcome_fractions_over_pairs():
    queries = unit([1, 0], [0, 1])
    mates = unit([1, 0.1], [0, 1])
    distractors = unit([1, 0], [1, 1], [-1, 0])
    out = pairs_outcome("u", queries, mates, distractors, thresholds={"far1e-3": 0.5}, ks=(1, 2))
    # ranks [[2, 3], [2, 1]]: rank > 1 for 3 of 4 pairs, rank > 2 for 1 of 4
    assert out.queries == 2 and out.psr["top1"] == pytest.approx(3 / 4) and out.psr["top2"] == pytest.approx(1 / 4)
    # similarities 0.995, 0, 0.0995, 1: below 0.5 for two pairs
    assert out.psr["far1e-3"] == pytest.approx(2 / 4)
    # OPOM's own form: the mates are the clean queries and pair (i, i) is left out -> pairs (0, 1) and (1, 0)
    same = pairs_outcome("u", queries, mates, distractors, ks=(1, 2), exclude_same=True)
    assert same.psr["top1"] == pytest.approx(1.0) and same.psr["top2"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="one mate per query"):
        pairs_outcome("u", queries, mates[:1], distractors, exclude_same=True)
    with pytest.raises(ValueError, match="no query/mate pair"):
        pairs_outcome("u", queries[:1], mates[:1], distractors, exclude_same=True)


def test_probe_outcome_by_protocol():
    gallery = unit([1, 0], [0.9, 0.1], [0, 1], [0.1, 1])
    labels = ["u", "u", "v", "v"]
    queries = unit([0.2, 1])  # nearer to v than to u
    templates = probe_outcome("templates", "u", queries, gallery, labels)
    assert templates.psr == {"top1": 1.0, "top5": 0.0}
    pairs = probe_outcome("opom-pairs", "u", queries, gallery, labels)
    # two mates (u's photos), two distractors (v's) that both outscore them: rank 3 for both pairs
    assert pairs.psr == {"top1": 1.0, "top5": 0.0, "top10": 0.0}
    assert pairs.queries == 1
    with pytest.raises(ValueError, match="unknown protocol"):
        probe_outcome("lfw-pairs", "u", queries, gallery, labels)
