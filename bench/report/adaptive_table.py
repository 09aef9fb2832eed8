"""The before/after table of docs/adversaries.md, generated from the published run of the ``adaptive`` suite.

``bench run --suite adaptive`` measures methods against adversaries that fight back (the recogniser's owner trains
against the public tool, the tracker enrols what it recognises) in the probe, gallery and linkage scenarios;
``bench leaderboard RUNS --publish results/adaptive/ --adaptive-table docs/adversaries.md`` publishes it and writes
this table between the doc's ``<!-- adaptive-table:begin -->`` and ``<!-- adaptive-table:end -->`` markers: per
method, target and scenario, PSR@1 with its interval against each adversary of the run, then what each trained
adaptation cost to build (``bench.report.doc_table``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report.doc_table import DocTable, code_revisions, white_box_targets
from bench.report.formatting import cell_status, with_interval

MARKER = "adaptive-table"
PUBLISHED = Path("results") / "adaptive"  # where the adaptive suite's run is published, from the repository root
DOC = Path("docs") / "adversaries.md"
COMMANDS = ("bench run --suite adaptive --users 10 --threads 1 --out runs/adaptive",
            f"bench leaderboard runs/adaptive --publish {PUBLISHED.as_posix()}/ --adaptive-table {DOC.as_posix()}")
SCENARIOS = ("probe", "gallery", "linkage")  # the order rows are shown in; others follow


def cell_text(cell: dict[str, Any] | None) -> str:
    """PSR@1 with its 95% interval in %, or why there is none."""
    if not cell:
        return "not scored"
    if cell_status(cell):
        return cell_status(cell)
    if cell.get("top1") is None:
        return "not scored"
    return with_interval(cell["top1"], cell.get("top1_ci"))


def _order(entry: dict[str, Any]) -> tuple:
    scenario = entry["scenario"]
    return entry["method"], SCENARIOS.index(scenario) if scenario in SCENARIOS else len(SCENARIOS), scenario


def render(board: dict[str, Any]) -> str:
    run = board["run"]
    adversaries, targets = board["adversaries"], board["targets"]
    white_box = white_box_targets(board)
    measured = sorted((e for e in board["entries"] if e["status"] != "unavailable"), key=_order)
    lines = [f"Run: suite `{run.get('suite')}`, {len(run.get('users') or [])} users, surrogates "
             f"{', '.join(run.get('surrogates') or [])} (white-box: {', '.join(white_box) or 'none'}); code "
             f"{', '.join(code_revisions(board))}, device {(run.get('environment') or {}).get('device', 'unknown')}. "
             "PSR@1 in % with its 95% bootstrap interval over users; `not scored`: the adversary does not apply to "
             "the scenario.", "",
             "| method | target | scenario | " + " | ".join(adversaries) + " |",
             "|" + "---|" * (3 + len(adversaries))]
    for e in measured:
        status = "" if e["status"] == "ok" else f" ({e['status']})"
        for t in targets:
            cells = e.get("psr", {}).get(t, {})
            lines.append(f"| {e['method']}{status} | {t} | {e['scenario']} | "
                         + " | ".join(cell_text(cells.get(a)) for a in adversaries) + " |")
    costs = {(e["method"], key): s for e in measured if e["scenario"] == "probe"
             for key, s in (e.get("adapt_s") or {}).items()}
    if costs:
        trained = list(dict.fromkeys(k.split("|", 1)[1] for _, k in costs))
        lines += ["", "What building each adaptation cost, seconds (protecting the owner's people with the method, "
                      "then training; as first built, on the run's machine):", "",
                  "| method | target | " + " | ".join(trained) + " |", "|" + "---|" * (2 + len(trained))]
        for method in dict.fromkeys(m for m, _ in costs):
            for t in targets:
                values = [costs.get((method, f"{t}|{a}")) for a in trained]
                if any(v is not None for v in values):
                    lines.append(f"| {method} | {t} | " + " | ".join("" if v is None else f"{v:,.0f}" for v in values)
                                 + " |")
    return "\n".join(lines) + "\n"


TABLE = DocTable(MARKER, PUBLISHED, DOC, "adaptive", COMMANDS, render)
pending, published_block, block, shown, write = (TABLE.pending, TABLE.published_block, TABLE.block, TABLE.shown,
                                                 TABLE.write)

__all__ = ["MARKER", "PUBLISHED", "DOC", "COMMANDS", "TABLE", "pending", "cell_text", "render", "published_block",
           "block", "shown", "write"]
