"""A second source of variance: the same suite on disjoint draws of users (``bench run --repeats N``).

A per-user interval says how sure a score is *for the users drawn*; the spread across draws says how much the
score moves when other people are drawn. Each draw is its own run folder (``draw-<k>``, suite field ``draw``:
the users are the k-th block of one seeded order of eligible identities, so no two draws share a user); this
module reads their leaderboards and reports, per method and scenario, the primary score of every draw with its
interval, the mean over draws, the standard deviation and the range.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.measures.registry import METRICS
from bench.report.formatting import percent, with_interval
from bench.report.tables import PRIMARY_SCORE


def spread(boards: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (method, scenario): the primary score of each draw and its spread across draws."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for draw, board in enumerate(boards):
        for e in board["entries"]:
            row = rows.setdefault((e["method"], e["scenario"]), {"method": e["method"], "scenario": e["scenario"],
                                                                  "draws": [None] * len(boards)})
            if e["status"] == "ok" and e.get(PRIMARY_SCORE) is not None:
                row["draws"][draw] = {"score": e[PRIMARY_SCORE], "ci": e.get(METRICS.headline().ci_field),
                                      "users": e.get("users"), "rank": e.get("rank")}
    for row in rows.values():
        scores = [d["score"] for d in row["draws"] if d]
        row["mean"] = statistics.fmean(scores) if scores else None
        row["sd"] = statistics.stdev(scores) if len(scores) > 1 else None
        row["range"] = [min(scores), max(scores)] if scores else None
    ordered = sorted(rows.values(), key=lambda r: -(r["mean"] if r["mean"] is not None else -1))
    return {"draws": len(boards), "users": [sorted(b["run"].get("users") or []) for b in boards],
            "primary_score": PRIMARY_SCORE, "rows": ordered}


def to_markdown(result: dict[str, Any]) -> str:
    n = result["draws"]
    head = ["method", "scenario", *(f"draw {k}" for k in range(n)), "mean", "sd", "range"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [r["method"], r["scenario"]]
        for d in r["draws"]:
            ci = d and d.get("ci")
            cells.append("–" if not d else with_interval(d["score"], ci))
        cells += [percent(r["mean"]), percent(r["sd"]), "–" if not r["range"] else
                  f"{percent(r['range'][0])} – {percent(r['range'][1])}"]
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"PSR@1 worst case in % on {n} disjoint draws of users (no user in two draws), each with its 95% "
            "bootstrap interval over that draw's users; sd and range across draws: how much the score moves when "
            "other people are drawn.")
    return "\n".join(lines + ["", note]) + "\n"


def write(result: dict[str, Any], out: str | Path) -> dict[str, Path]:
    out = Path(out)
    paths = {"json": out / "repeats.json", "md": out / "repeats.md"}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    paths["md"].write_text(to_markdown(result))
    return paths


__all__ = ["spread", "to_markdown", "write"]
