"""Paired bootstrap, tied ranks and split-half stability (pure math on small per-user matrices)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.ranking import mean_cell, paired_difference, split_half, tied_ranks, worst_cell


def _users(rng, mean, users=12, cells=3, spread=0.1):
    return np.clip(rng.normal(mean, spread, size=(users, cells)), 0, 1)


def test_worst_cell_is_the_smallest_cell_mean():
    m = np.array([[1.0, 0.0], [1.0, 0.5]])
    assert worst_cell(m[None])[0] == pytest.approx(0.25)
    assert mean_cell(m[None])[0] == pytest.approx(0.625)


def test_a_clear_gap_is_significant_and_its_interval_holds_the_point():
    rng = np.random.default_rng(0)
    a, b = _users(rng, 0.8), _users(rng, 0.2)
    d = paired_difference(a, b)
    assert d.significant and d.mean > 0.4 and d.ci[0] <= d.mean <= d.ci[1]
    assert paired_difference(b, a).mean == pytest.approx(-d.mean)


def test_pairing_removes_the_users_spread():
    """b is a shifted by a constant: unpaired intervals would overlap, the paired difference is exact."""
    rng = np.random.default_rng(1)
    a = _users(rng, 0.5, spread=0.3)
    b = np.clip(a - 0.05, 0, 1)
    d = paired_difference(a, b, score=mean_cell)
    assert d.significant and d.ci[0] > 0


def test_methods_no_test_tells_apart_share_a_rank():
    rng = np.random.default_rng(2)
    same = _users(rng, 0.5)
    ranks = tied_ranks({"x": same, "y": same.copy(), "z": _users(rng, 0.05)})
    assert ranks == {"x": 1, "y": 1, "z": 3}


def test_split_half_agrees_on_a_stable_order():
    rng = np.random.default_rng(3)
    matrices = {f"m{i}": _users(rng, 0.1 + 0.2 * i, users=20, spread=0.02) for i in range(4)}
    half = split_half(matrices, seed=0)
    assert half.rank_correlation == pytest.approx(1.0)
    assert not set(half.halves[0]) & set(half.halves[1]) and len(half.halves[0]) + len(half.halves[1]) == 20


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape|one shape"):
        paired_difference(np.zeros((3, 2)), np.zeros((4, 2)))
