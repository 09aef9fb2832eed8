"""The method table of docs/methods.md, generated from the published run of the ``methods`` suite.

``bench run --suite methods`` measures every registered method at its defaults on the same users;
``bench leaderboard RUN --publish results/methods/ --method-table docs/methods.md`` publishes it and writes this
table between the doc's ``<!-- method-table:begin -->`` and ``<!-- method-table:end -->`` markers. Until a run is
published there, the block says the table is pending and gives those commands. The table is never edited by
hand: a test keeps the doc's block equal to ``block(root)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.measures.registry import METRICS
from bench.report.formatting import number, percent
from bench.report.leaderboard import FILES
from bench.report.publish import readme_block, write_readme_block
from bench.report.tables import PRIMARY_SCORE

MARKER = "method-table"
PUBLISHED = Path("results") / "methods"  # where the methods suite's run is published, from the repository root
DOC = Path("docs") / "methods.md"
COMMANDS = ("bench run --suite methods --threads 1 --out runs/methods",
            f"bench leaderboard runs/methods --publish {PUBLISHED.as_posix()}/ --method-table {DOC.as_posix()}")
# the measures of a row, in the registry's formats
SHOWN = ("ssim", "lpips", "linf", "fit_s", "protect_ms_per_photo")
HEAD = ["method", "kind", "users", "rank", "PSR@1 worst [95% CI]", "PSR@1 white-box, no adversary", "PSR@1 worst unseen",
        *(METRICS.get(m).label for m in SHOWN), "reduced"]


def pending() -> str:
    """The block while no run is published: what makes the table."""
    return ("The table is pending: no run of the `methods` suite is published in "
            f"`{PUBLISHED.as_posix()}/` yet. It is made by\n\n```\n" + "\n".join(COMMANDS) + "\n```\n")


def _white_box(board: dict[str, Any]) -> list[str]:
    return [t for t in board["targets"] if board.get("target_info", {}).get(t, {}).get("white_box")]


def _worst(entry: dict[str, Any], targets: list[str], adversary: str) -> float | None:
    """The lowest PSR@1 over ``targets`` against one adversary (None when a cell is missing)."""
    cells = [entry.get("psr", {}).get(t, {}).get(adversary, {}).get("top1") for t in targets]
    return None if not cells or any(c is None for c in cells) else min(cells)


def reduction(entry: dict[str, Any], run_users: int) -> str:
    """What a row measured less than the run's protocol: fewer users, a changed config."""
    notes = []
    if entry.get("users") is not None and entry["users"] < run_users:
        notes.append(f"{entry['users']} of {run_users} users")
    notes += [f"{k}={v}" for k, v in (entry.get("overrides") or {}).items()]
    return "; ".join(notes)


def rank_text(entry: dict[str, Any]) -> str:
    """The rank, or why there is none: a row on fewer users is not ranked against the others
    (``bench.measures.ranking.ranking_group``)."""
    if entry.get("rank") is not None:
        return str(entry["rank"])
    return f"not ranked ({entry['users']} users)" if entry.get("unranked") else ""


def _row(entry: dict[str, Any], white_box: list[str], run_users: int) -> str:
    status = "" if entry["status"] == "ok" else f" ({entry['status']})"
    if entry["status"] == "unavailable":
        return f"| {entry['method']}{status} | {entry.get('kind') or ''} | unavailable: {entry.get('reason')} |" + \
            " |" * (len(HEAD) - 3)
    interval = entry.get("psr_top1_worst_ci")
    worst = percent(entry.get(PRIMARY_SCORE)) + (f" [{percent(interval[0])}, {percent(interval[1])}]"
                                                 if interval else "")
    cells = [entry["method"] + status, entry.get("kind") or "", str(entry.get("users", "")), rank_text(entry), worst,
             percent(_worst(entry, white_box, "none")), percent(entry.get("psr_top1_worst_unseen")),
             *(number(entry.get(METRICS.get(m).entry), METRICS.get(m).fmt) for m in SHOWN),
             reduction(entry, run_users)]
    return "| " + " | ".join(cells) + " |"


def render(board: dict[str, Any]) -> str:
    """The table of a published leaderboard (``leaderboard.json``'s contents), probe scenario, with its run."""
    run = board["run"]
    users = len(run.get("users") or [])
    white_box = _white_box(board)
    unseen = [t for t in board["targets"] if t not in white_box]
    revisions = sorted({i.get("git_revision") or "unknown" for i in run.get("invocations") or []} or
                       {(run.get("environment") or {}).get("git_revision") or "unknown"})
    lines = [f"Run: suite `{run.get('suite')}`, {users} users, surrogates {', '.join(run.get('surrogates') or [])} "
             f"(white-box: {', '.join(white_box) or 'none'}), unseen targets {', '.join(unseen) or 'none'}, "
             f"adversaries {', '.join(board['adversaries'])}; code {', '.join(r[:12] for r in revisions)}, "
             f"device {(run.get('environment') or {}).get('device', 'unknown')}. PSR@1 in %: worst over every "
             "target x adversary with its 95% bootstrap interval over users; the lowest over the white-box "
             "targets with no adversary; the worst over the unseen targets. Every figure of a row is over its own "
             "users. `rank`: 1 + the methods a paired bootstrap over the users they share finds significantly "
             "better, among the rows on every user; a row on fewer users (a method too costly for the machine) "
             "is not ranked against them. `reduced`: what the row measured less than the run (fewer users, a "
             "changed config).", "",
             "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += [_row(e, white_box, users) for e in board["entries"] if e["scenario"] == "probe"]
    return "\n".join(lines) + "\n"


def published_block(published: Path) -> str:
    """The block for a folder published by ``bench leaderboard --publish``; pending when it holds no run."""
    board = published / FILES["json"][0]
    return render(json.loads(board.read_text())) if board.is_file() else pending()


def block(root: Path) -> str:
    """The block docs/methods.md must hold in the repository at ``root``."""
    return published_block(root / PUBLISHED)


def shown(doc: Path) -> str:
    """The block a doc holds now."""
    return readme_block(doc.read_text(), MARKER)


def write(published: Path, doc: Path) -> Path:
    """Write the table of the run published in ``published`` into ``doc``'s block."""
    return write_readme_block(doc, published_block(published), MARKER)


__all__ = ["MARKER", "PUBLISHED", "DOC", "COMMANDS", "pending", "render", "rank_text", "reduction", "published_block", "block",
           "shown", "write"]
