"""``bench compare RUN A B``: the paired difference of two methods' PSR@1, with its 95% interval, per target and
adversary and for the primary score (the worst cell).

Paired: every bootstrap replicate draws one set of the users both methods were judged on and scores both on it
(``bench.measures.ranking.paired_difference``), so who was drawn cancels out of the difference. RUN is a run folder, or a
folder holding a ``leaderboard.json`` (a published ``results/``).
"""

from __future__ import annotations

import json
import sys

from rich.table import Table

from bench.commands._ui import add_format_option, wants_json, wide_console
from bench.measures.ranking import mean_cell, paired_difference, shared_cells_users, user_matrix, worst_cell
from bench.measures.registry import METRICS
from bench.report.formatting import percent
from bench.report.results_frame import load_board
from bench.run.suites import SCENARIOS

HEADLINE = METRICS.headline()


def entry_of(board: dict, method: str, scenario: str) -> dict:
    for e in board["entries"]:
        if e["method"] == method and e["scenario"] == scenario:
            if not e.get(HEADLINE.per_user_field):
                why = (f"{e['status']}: {e.get('reason')}" if e["status"] != "ok" else
                       "its leaderboard was written before per-user values were kept")
                raise ValueError(f"{method} ({scenario}) has no per-user PSR ({why}); regenerate the leaderboard "
                                 "from its run folder (bench leaderboard RUN_DIR)")
            return e
    known = sorted({e["method"] for e in board["entries"] if e["scenario"] == scenario})
    raise ValueError(f"no entry {method!r} in the {scenario} scenario; known: {', '.join(known)}")


def compare(board: dict, a: str, b: str, scenario: str = "probe", n_boot: int = 2000) -> dict:
    """Per shared cell and for the worst cell: A - B in PSR@1 with a paired 95% interval over shared users."""
    ea, eb = entry_of(board, a, scenario), entry_of(board, b, scenario)
    cells, users = shared_cells_users([ea, eb])
    if not users:
        raise ValueError(f"{a} and {b} share no user judged on the same target and adversary")
    ma, mb = (user_matrix(e[HEADLINE.per_user_field], cells, users) for e in (ea, eb))
    rows = []
    for i, cell in enumerate(cells):
        d = paired_difference(ma[:, [i]], mb[:, [i]], mean_cell, n_boot)
        target, adversary = cell.split("|", 1)
        rows.append({"target": target, "adversary": adversary, "a": float(ma[:, i].mean()), "b": float(mb[:, i].mean()),
                     "difference": d.mean, "ci": list(d.ci), "significant": d.significant})
    worst = paired_difference(ma, mb, worst_cell, n_boot)
    return {"a": a, "b": b, "scenario": scenario, "users": len(users), "cells": rows,
            "worst": {"a": float(worst_cell(ma[None])[0]), "b": float(worst_cell(mb[None])[0]),
                      "difference": worst.mean, "ci": list(worst.ci), "significant": worst.significant}}


def run(args) -> int:
    try:
        result = compare(load_board(args.run), args.a, args.b, args.scenario, args.bootstrap)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if wants_json(args):
        print(json.dumps(result, indent=2))
        return 0
    table = Table(title=f"PSR@1 {result['a']} - {result['b']} ({result['scenario']} scenario, {result['users']} "
                        "users, paired bootstrap)")
    for col in ("target", "adversary", result["a"], result["b"], "difference [95% CI]"):
        table.add_column(col)

    def add(target: str, adversary: str, row: dict) -> None:
        mark = "" if row["significant"] else " (not significant)"
        table.add_row(target, adversary, percent(row["a"]), percent(row["b"]),
                      f"{100 * row['difference']:+.1f} [{100 * row['ci'][0]:+.1f}, {100 * row['ci'][1]:+.1f}]{mark}")

    for row in result["cells"]:
        add(row["target"], row["adversary"], row)
    add("worst cell", "", result["worst"])
    wide_console().print(table)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="paired difference of two methods' PSR with its interval")
    p.add_argument("run", metavar="RUN", help="run folder, or a folder with leaderboard.json (e.g. results/)")
    p.add_argument("a", metavar="A", help="method")
    p.add_argument("b", metavar="B", help="method to subtract")
    p.add_argument("--scenario", "--scenarios", dest="scenario", default="probe", choices=list(SCENARIOS),
                   help="the scenario whose entries are compared (default probe)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default 2000)")
    add_format_option(p)
    p.set_defaults(func=run)
