"""Paired bootstrap, tied ranks and split-half stability (pure math on small per-user matrices)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measures.ranking import (
    mean_cell,
    paired_difference,
    rank_entries,
    split_half,
    stability,
    tied_ranks,
    worst_cell,
)


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


def _entry(method, matrix, cells, scenario="probe", status="ok"):
    users = [f"u{i}" for i in range(matrix.shape[0])]
    return {"method": method, "scenario": scenario, "status": status,
            "per_user_top1": {c: {u: float(matrix[i, j]) for i, u in enumerate(users)} for j, c in enumerate(cells)}}


def test_leaderboard_entries_get_tied_ranks_and_the_primary_scores_interval():
    rng = np.random.default_rng(4)
    cells = ["sface|none", "sface|jpeg-75"]
    strong = _users(rng, 0.8, users=12, cells=2)
    entries = [_entry("a", strong, cells), _entry("b", strong.copy(), cells), _entry("c", _users(rng, 0.1, users=12, cells=2), cells),
               _entry("d", strong, cells, scenario="gallery"), {"method": "e", "scenario": "probe", "status": "failed"}]
    rank_entries(entries)
    assert [e.get("rank") for e in entries] == [1, 1, 3, 1, None]
    lo, hi = entries[0]["psr_top1_worst_ci"]
    assert lo <= worst_cell(strong[None])[0] <= hi and hi - lo > 0
    assert "psr_top1_worst_ci" not in entries[4]


def test_compare_pairs_two_methods_over_their_shared_users_and_cells():
    from bench.commands.compare import compare

    rng = np.random.default_rng(5)
    cells = ["sface|none", "mobileface|none"]
    a = _users(rng, 0.6, users=15, cells=2)
    board = {"entries": [_entry("a", a, cells), _entry("b", np.clip(a - 0.2, 0, 1), cells)]}
    result = compare(board, "a", "b")
    assert result["users"] == 15 and [(r["target"], r["adversary"]) for r in result["cells"]] == [
        ("mobileface", "none"), ("sface", "none")]
    assert all(r["significant"] and r["ci"][0] > 0 for r in result["cells"])
    with pytest.raises(ValueError, match="known: a, b"):
        compare(board, "a", "nope")


def test_the_split_half_check_covers_every_target_and_the_unseen_ones():
    rng = np.random.default_rng(6)
    cells = ["sface|none", "mobileface|none"]
    entries = [dict(_entry(f"m{i}", _users(rng, 0.1 + 0.25 * i, users=16, cells=2, spread=0.02), cells),
                    unseen_targets=["mobileface"]) for i in range(4)]
    check = stability(entries)
    assert check["users"] == 16 and check["methods"] == 4
    assert check["all"]["rank_correlation"] == pytest.approx(1.0) and check["all"]["cells"] == 2
    assert check["unseen"]["cells"] == 1 and check["unseen"]["halves"] == [8, 8]
    assert stability(entries[:1]) is None  # one method: no order to check
    two = stability(entries[:2])  # two methods: rho is +1 or -1 whatever the users say
    assert "all" not in two and "at least 3 ranked methods" in two["left_out"]
    from bench.report.tables import stability_notes

    assert stability_notes({"stability": two}) == [f"Split-half check (probe scenario) left out: {two['left_out']}."]


def test_the_spread_across_draws_reads_each_draws_primary_score():
    from bench.report.repeats import spread, to_markdown

    def board(scores, users):
        return {"run": {"users": users}, "entries": [
            {"method": m, "scenario": "probe", "status": "ok", "psr_top1_worst": s, "psr_top1_worst_ci": [s - 0.1, s + 0.1],
             "users": len(users)} for m, s in scores.items()]}

    result = spread([board({"a": 0.5, "b": 0.2}, ["u1", "u2"]), board({"a": 0.7, "b": 0.2}, ["u3", "u4"])])
    a, b = result["rows"]
    assert a["method"] == "a" and a["mean"] == pytest.approx(0.6) and a["range"] == [0.5, 0.7]
    assert a["sd"] == pytest.approx(0.1414, abs=1e-3) and b["sd"] == 0
    assert result["users"] == [["u1", "u2"], ["u3", "u4"]]
    assert "| a | probe | 50.0 [40.0, 60.0] | 70.0 [60.0, 80.0] | 60.0 |" in to_markdown(result)


def _board_for_reading(rng, gaps, users=12):
    """Methods m0.. on sface (a surrogate) and mobileface (unseen), mobileface mean 0.2 + gap; psr cells filled."""
    cells = ["sface|none", "mobileface|none"]
    entries = []
    for i, gap in enumerate(gaps):
        m = np.column_stack([_users(rng, 0.9, users=users, cells=1, spread=0.02)[:, 0],
                             _users(rng, 0.2 + gap, users=users, cells=1, spread=0.05)[:, 0]])
        e = dict(_entry(f"m{i}", m, cells), unseen_targets=["mobileface"], kind="universal")
        e["psr"] = {c.split("|")[0]: {"none": {"top1": float(m[:, j].mean()), "top1_ci": [0.0, 1.0]}}
                    for j, c in enumerate(cells)}
        e["psr_top1_worst"] = float(worst_cell(m[None])[0])
        entries.append(e)
    rank_entries(entries)
    return {"entries": entries, "stability": stability(entries)}


def test_the_reading_claims_an_order_only_where_the_paired_bootstrap_separates_it():
    from bench.report.findings import reading

    rng = np.random.default_rng(7)
    apart = reading(_board_for_reading(rng, [0.5, 0.0, 0.0]))
    assert any("rank 1: m0" in line and "rank 2 (tied): m1" in line for line in apart)
    (transfer,) = [line for line in apart if "mobileface (never a surrogate)" in line]
    assert "m0" in transfer and "is ahead of" in transfer
    assert any(line.startswith("- Split-half check over every target") for line in apart)
    assert apart[-1].startswith("- Only 12 users")

    together = reading(_board_for_reading(np.random.default_rng(8), [0.01, 0.0]))
    assert any("rank 1 (tied)" in line for line in together)
    assert any("cannot be told apart" in line for line in together)
    assert reading({"entries": [{"method": "a", "scenario": "probe", "status": "ok"}]}) == []


def test_a_row_on_fewer_users_is_not_ranked_and_the_others_rank_on_all_theirs():
    """A costly method protected 2 of the 10 users: ranking everyone on the 2 users all rows share would tie two
    methods that only the other 8 users tell apart, and a 2-user row has no rank among 10-user rows."""
    rng = np.random.default_rng(7)
    cells = ["sface|none"]
    strong, weak = _users(rng, 0.9, users=10, cells=1, spread=0.02), _users(rng, 0.1, users=10, cells=1, spread=0.02)
    weak[:2] = strong[:2]  # on the two users the reduced row has, the two full rows look alike
    reduced = _entry("square", _users(rng, 0.5, users=2, cells=1), cells)
    entries = [_entry("a", strong, cells), _entry("c", weak, cells), reduced]
    rank_entries(entries)
    assert [e.get("rank") for e in entries] == [1, 2, None]
    assert "unranked" not in entries[0] and entries[2]["unranked"].startswith("judged on 2 of the 10 users")
    assert stability(entries, "probe")["methods"] == 2  # the split-half check runs on the ranked rows only
    rank_entries(entries)  # ranked again (a merged board): the same, nothing stale left
    assert [e.get("rank") for e in entries] == [1, 2, None] and "rank" not in entries[2]
