"""The reading of a leaderboard, generated from its numbers: what its intervals, tied ranks and split-half check
support, and nothing they do not.

Every sentence is computed from the board (``reading(board)``), so a new run rewrites it. It closes every
``leaderboard.md``; the README shows the published one between ``<!-- results:begin -->`` and
``<!-- results:end -->`` (``bench leaderboard RUN --publish results/ --readme README.md`` writes both). A claim about an order is made only
where a paired bootstrap over the same users separates the methods, and the split-half check says whether the
order held on two disjoint halves of the users.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.measures.ranking import mean_cell, paired_difference, shared_cells_users, user_matrix
from bench.measures.registry import METRICS
from bench.report.formatting import percent

HOLDS = 0.8  # split-half rank correlation from which an order is said to hold on new people
ROUGHLY = 0.5
HEADLINE = METRICS.headline()  # the measure whose worst case ranks the board


def _pct(value: float | None) -> str:
    return f"{percent(value)}%"


def _interval(ci: list[float] | tuple[float, float] | None) -> str:
    return f" [{percent(ci[0])}, {percent(ci[1])}]" if ci else ""


def _ranked(board: dict[str, Any], scenario: str) -> list[dict]:
    return [e for e in board["entries"] if e["scenario"] == scenario and e["status"] == "ok" and e.get("rank")]


def _rank_groups(entries: list[dict]) -> str:
    groups: dict[int, list[dict]] = {}
    for e in sorted(entries, key=lambda e: (e["rank"], -(e.get(HEADLINE.worst_field) or 0.0))):
        groups.setdefault(e["rank"], []).append(e)
    parts = []
    for rank, members in groups.items():
        names = ", ".join(f"{e['method']} {_pct(e.get(HEADLINE.worst_field))}{_interval(e.get(HEADLINE.ci_field))}"
                          for e in members)
        parts.append(f"rank {rank}{' (tied)' if len(members) > 1 else ''}: {names}")
    return "; ".join(parts)


def _transfer(entries: list[dict], target: str, adversary: str = "none") -> str | None:
    """The best method on one unseen target against the next, paired over the users both have."""
    cell = f"{target}|{adversary}"
    per_user = HEADLINE.per_user_field
    have = [e for e in entries if cell in (e.get(per_user) or {})]
    if len(have) < 2:
        return None
    users = sorted(set.intersection(*(set(e[per_user][cell]) for e in have)))
    if len(users) < 2:
        return None
    means = {e["method"]: float(np.nanmean(user_matrix(e[per_user], [cell], users))) for e in have}
    first, second = sorted(have, key=lambda e: -means[e["method"]])[:2]
    diff = paired_difference(user_matrix(first[per_user], [cell], users),
                             user_matrix(second[per_user], [cell], users), score=mean_cell)
    ci = first["psr"][target][adversary].get(f"{HEADLINE.name}_ci")
    condition = "no adversary" if adversary == "none" else adversary
    head = (f"on {target} (never a surrogate), {condition}, {first['method']} {_pct(means[first['method']])}"
            f"{_interval(ci)}")
    gap = f"{_pct(diff.mean)} [{percent(diff.ci[0])}, {percent(diff.ci[1])}]"
    if diff.significant:
        return f"{head} is ahead of {second['method']} by {gap}, paired over {diff.users} users"
    return (f"{head} cannot be told apart from {second['method']} ({_pct(means[second['method']])}; "
            f"difference {gap} over {diff.users} users)")


def _stability(check: dict | None) -> list[str]:
    if not check:
        return []
    out = []
    for key, what in (("all", "over every target"), ("unseen", "over unseen targets only")):
        rho = (check.get(key) or {}).get("rank_correlation")
        if rho is None or np.isnan(rho):
            continue
        verdict = ("held" if rho >= HOLDS else "held roughly" if rho >= ROUGHLY
                   else "did not hold: read this order as unsettled")
        out.append(f"Split-half check {what}: the order of the {check['methods']} methods on two disjoint halves "
                   f"of the {check['users']} users has Spearman's rho {rho:.2f}; it {verdict}.")
    return out


def reading(board: dict[str, Any]) -> list[str]:
    """Markdown bullets: per scenario the tied rank groups and the transfer to each unseen target, then the
    split-half check; an empty list for a board without per-user values (nothing to support a claim)."""
    lines, user_counts = [], []
    for scenario in dict.fromkeys(e["scenario"] for e in board["entries"]):
        entries = _ranked(board, scenario)
        if not entries:
            continue
        users = len(shared_cells_users(entries)[1])
        user_counts.append(users)
        lines.append(f"- {scenario} scenario, {users} users, {HEADLINE.label} worst case with its 95% interval over users "
                     f"(tied = no paired bootstrap tells them apart): {_rank_groups(entries)}.")
        unseen = sorted(set.intersection(*(set(e.get("unseen_targets") or []) for e in entries)))
        lines += [f"- {scenario} scenario, {claim}." for claim in (_transfer(entries, t) for t in unseen) if claim]
    if not lines:
        return []
    lines += [f"- {s}" for s in _stability(board.get("stability"))]
    if min(user_counts) < 30:
        lines.append(f"- Only {min(user_counts)} users: each interval above is the honest width of what the table "
                     "knows; a new draw of people can move any single figure within it.")
    return lines


__all__ = ["reading"]
