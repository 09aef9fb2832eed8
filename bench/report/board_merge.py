"""One leaderboard from several runs of the same protocol (``merge``): a slow method run apart joins the others."""

from __future__ import annotations

from typing import Any

from bench.measures.ranking import rank_entries, stability
from bench.measures.registry import METRICS
from bench.report.tables import PRIMARY_SCORE


def _protocol(board: dict[str, Any]) -> dict[str, Any]:
    run = board["run"]
    return {"data root": (run.get("data") or {}).get("root"), "identities": (run.get("data") or {}).get("identities"),
            "users": run.get("users"), "surrogates": run.get("surrogates"), "targets": board["targets"],
            "adversaries": board["adversaries"], **(run.get("protocol") or {})}


def _whole_one(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Of one method measured in two runs, the one measured whole: a part stopped before a method's end (its entry
    ``incomplete``) gives way to the run that measured it all. Two that both count are refused."""
    if (first["status"] == "incomplete") != (second["status"] == "incomplete"):
        return second if first["status"] == "incomplete" else first
    raise ValueError(f"{first['method']} ({first['scenario']}) is in both {first['run']['source']} and "
                     f"{second['run']['source']}; merge runs with distinct methods")


def merge(boards: list[dict[str, Any]]) -> dict[str, Any]:
    """One leaderboard from runs that differ only in their methods (e.g. a slow method run apart).

    Every entry keeps its own run's facts (suite, environment, git revision); a method stopped part way in one
    run and measured whole in another is the whole one (``_whole_one``). Runs must share the protocol
    (``_protocol``): otherwise their scores are not comparable and this raises, naming what differs.
    """
    first = boards[0]
    reference = _protocol(first)
    for board in boards[1:]:
        other = _protocol(board)
        differs = [k for k in reference if reference[k] != other.get(k)]
        if differs:
            raise ValueError(f"runs {first['run']['source']} and {board['run']['source']} differ in "
                             f"{', '.join(differs)}: their scores cannot share a leaderboard")
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for board in boards:
        facts = {k: board["run"].get(k) for k in ("suite", "created", "environment", "source", "invocations")}
        for e in board["entries"]:
            ident = (e["method"], e["scenario"])
            e = {**e, "run": e.get("run") or facts}  # an entry of a published board has its own run's facts
            if ident in kept:
                e = _whole_one(kept[ident], e)
            kept[ident] = e
    entries = list(kept.values())
    entries.sort(key=lambda e: (e["status"] != "ok", -(e.get(PRIMARY_SCORE) or -1)))
    rank_entries(entries)  # again: the merged runs' methods are ranked together
    clean: dict[str, Any] = {}
    for board in boards:
        for target, acc in board["clean"].items():
            known = clean.setdefault(target, acc)
            key = f"{METRICS.headline().name}_accuracy"
            if abs(known[key] - acc[key]) > 1e-9:
                raise ValueError(f"clean accuracy on {target} differs between the runs ({known[key]:.4f} "
                                 f"vs {acc[key]:.4f}): they did not judge the same photos the same way")
    run = {**first["run"], "suite": "+".join(dict.fromkeys(b["run"]["suite"] for b in boards)),
           "source": [s for b in boards for s in (b["run"]["source"] if isinstance(b["run"]["source"], list)
                                                  else [b["run"]["source"]])]}
    return {**first, "run": run, "entries": entries, "clean": clean, "stability": stability(entries)}
