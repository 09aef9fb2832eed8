"""The method table of docs/methods.md, generated from the published run of the ``methods`` suite.

``bench run --suite methods`` measures every registered method at its defaults on the same users;
``bench leaderboard RUN --publish results/methods/ --method-table docs/methods.md`` publishes it and writes this
table between the doc's ``<!-- method-table:begin -->`` and ``<!-- method-table:end -->`` markers
(``bench.report.doc_table``), and beside the doc its chart (``CHART``): each method's worst-case PSR@1 against
LPIPS, the table's trade-off at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measures.registry import METRICS
from bench.registry import METHODS
from bench.report.charts import tradeoff_chart
from bench.report.doc_table import DocTable, code_revisions, white_box_targets
from bench.report.formatting import number, percent, with_interval
from bench.report.html_data import normalise
from bench.report.tables import PRIMARY_SCORE

MARKER = "method-table"
PUBLISHED = Path("results") / "methods"  # where the methods suite's run is published, from the repository root
DOC = Path("docs") / "methods.md"
CHART = "methods-tradeoff.svg"  # beside the doc
COMMANDS = ("bench run --suite methods --threads 1 --out runs/methods",
            f"bench leaderboard runs/methods --publish {PUBLISHED.as_posix()}/ --examples 0 "
            f"--method-table {DOC.as_posix()}",
            # a part of the methods measured later (the rest of a table grown in parts) joins the published ones
            f"bench leaderboard {PUBLISHED.as_posix()}/ runs/methods-part --publish {PUBLISHED.as_posix()}/ "
            f"--examples 0 --method-table {DOC.as_posix()}")
# the measures of a row, in the registry's formats
SHOWN = ("ssim", "lpips", "linf", "fit_s", "protect_ms_per_photo")
HEAD = ["method", "kind", "users", "rank", "PSR@1 worst [95% CI]", "PSR@1 white-box, no adversary", "PSR@1 worst unseen",
        *(METRICS.get(m).label for m in SHOWN), "reduced"]


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
    worst = with_interval(entry.get(PRIMARY_SCORE), interval)
    cells = [entry["method"] + status, entry.get("kind") or "", str(entry.get("users", "")), rank_text(entry), worst,
             percent(_worst(entry, white_box, "none")), percent(entry.get("psr_top1_worst_unseen")),
             *(number(entry.get(METRICS.get(m).entry), METRICS.get(m).fmt) for m in SHOWN),
             reduction(entry, run_users)]
    return "| " + " | ".join(cells) + " |"


def render(board: dict[str, Any]) -> str:
    """The table of a published leaderboard (``leaderboard.json``'s contents), probe scenario, with its run."""
    run = board["run"]
    users = len(run.get("users") or [])
    white_box = white_box_targets(board)
    unseen = [t for t in board["targets"] if t not in white_box]
    lines = [f"Run: suite `{run.get('suite')}`, {users} users, surrogates {', '.join(run.get('surrogates') or [])} "
             f"(white-box: {', '.join(white_box) or 'none'}), unseen targets {', '.join(unseen) or 'none'}, "
             f"adversaries {', '.join(board['adversaries'])}; code {', '.join(code_revisions(board))}, "
             f"device {(run.get('environment') or {}).get('device', 'unknown')}. PSR@1 in %: worst over every "
             "target x adversary with its 95% bootstrap interval over users; the lowest over the white-box "
             "targets with no adversary; the worst over the unseen targets. Every figure of a row is over its own "
             "users. `rank`: 1 + the methods a paired bootstrap over the users they share finds significantly "
             "better, among the rows on every user; a row on fewer users (a method too costly for the machine) "
             "is not ranked against them. `reduced`: what the row measured less than the run (fewer users, a "
             "changed config).", "",
             f"![Each method's worst-case PSR@1 with its interval against LPIPS]({CHART})", "",
             "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += [_row(e, white_box, users) for e in board["entries"] if e["scenario"] == "probe"]
    return "\n".join(lines) + "\n" + not_yet_measured(board)


def not_yet_measured(board: dict[str, Any]) -> str:
    """The registered methods the board has no row for (a table grown in parts, or a method added since), so a
    partial table says it is one."""
    measured = {e["method"] for e in board["entries"]}
    missing = [m for m in METHODS.names() if m not in measured]
    if not missing:
        return ""
    return (f"\nNot yet measured: {len(missing)} of the {len(METHODS.names())} registered methods "
            f"({', '.join(missing)}). They are measured in a further run published with this one: "
            f"`{COMMANDS[2]}`.\n")


def chart(board: dict[str, Any]) -> str:
    """The table's rows as an SVG: worst-case PSR@1 with its interval against LPIPS (``tradeoff_chart``); the
    labels a crowded spot has no room for are in the table."""
    probe = [e for e in board["entries"] if e.get("scenario") == "probe"]
    return tradeoff_chart(normalise({**board, "entries": probe}), "worst", "visibility")[0] + "\n"


TABLE = DocTable(MARKER, PUBLISHED, DOC, "methods", COMMANDS, render, chart, CHART)
pending, published_block, block, shown, write = (TABLE.pending, TABLE.published_block, TABLE.block, TABLE.shown,
                                                 TABLE.write)

__all__ = ["MARKER", "PUBLISHED", "DOC", "CHART", "COMMANDS", "TABLE", "pending", "render", "chart", "rank_text",
           "reduction", "published_block", "block", "shown", "write", "not_yet_measured"]
