"""PSR math on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.metrics import bootstrap_ci, identity_templates, summarise, true_identity_rank, user_outcome


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
