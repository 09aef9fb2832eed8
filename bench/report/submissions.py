"""Entries from outside: validate a submitted entry and merge it into a published leaderboard of its protocol.

A submitted entry (``origin: "submitted"``, docs/submitting.md) is judged by its evidence, each user's headline
PSR per target|adversary cell: it must follow the entry schema (``bench.report.result_schema``), be scored on the
board's protocol (the same protocol fields, users, targets and adversaries), and its cells and worst case must be
what its per-user values say. ``bench validate ENTRY`` prints every problem on one line; ``bench leaderboard RUN
--publish DIR`` keeps the submitted entries it finds in ``DIR/entries`` and ranks them with the run's entries
(their rank, interval and the split-half check are recomputed from the evidence), and refuses one of another
protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.core.validation import read_json
from bench.measures.registry import METRICS
from bench.report.result_schema import Entry, schema_errors

TOLERANCE = 1e-5  # per-user values are published to 6 decimals


def read_entry(path: str | Path) -> Any:
    return read_json(path, "give the path of an entry's JSON file")


def is_submitted(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("origin") == "submitted"


def evidence_errors(entry: dict[str, Any]) -> list[str]:
    """Where the entry's cells or worst case disagree with its per-user values."""
    headline = METRICS.headline()
    errors = []
    per_user = entry.get(headline.per_user_field) or {}
    values = []
    for cell, users in per_user.items():
        target, adversary = cell.split("|", 1)
        mean = float(np.mean(list(users.values())))
        values.append(mean)
        stated = (entry.get("psr", {}).get(target, {}).get(adversary) or {}).get(headline.name)
        if stated is None:
            errors.append(f"psr/{target}/{adversary}/{headline.name}: missing, but the evidence has that cell")
        elif abs(stated - mean) > TOLERANCE:
            errors.append(f"psr/{target}/{adversary}/{headline.name}: {stated:.6f} is not the mean of its "
                          f"{len(users)} users' values ({mean:.6f})")
    worst = entry.get(headline.worst_field)
    if values and (worst is None or abs(worst - min(values)) > TOLERANCE):
        errors.append(f"{headline.worst_field}: {worst} is not the worst cell of the evidence ({min(values):.6f})")
    return errors


def protocol_errors(entry: dict[str, Any], board: dict[str, Any]) -> list[str]:
    """Where a submitted entry's protocol differs from the board's: then its scores cannot be ranked with it."""
    errors = []
    run = entry.get("run") or {}
    theirs, ours = run.get("protocol") or {}, board["run"].get("protocol") or {}
    differs = [k for k in ours if theirs.get(k) != ours[k]]
    if differs:
        errors.append("run/protocol differs in " + ", ".join(f"{k} ({theirs.get(k)!r}, this board {ours[k]!r})"
                                                              for k in differs))
    for key in ("targets", "adversaries"):
        if list(entry.get(key) or []) != list(board.get(key) or []):
            errors.append(f"{key}: {entry.get(key)} differ from this board's {board.get(key)}")
    users = sorted(board["run"].get("users") or [])
    if sorted(run.get("users") or []) != users:
        errors.append(f"run/users: the entry's {len(run.get('users') or [])} users are not this board's {len(users)}")
    headline = METRICS.headline()
    for cell, per in (entry.get(headline.per_user_field) or {}).items():
        if sorted(per) != users:
            errors.append(f"{headline.per_user_field}/{cell}: its users are not this board's {len(users)} users")
            break
    return errors


def entry_errors(entry: Any, board: dict[str, Any] | None = None) -> list[str]:
    """Every problem of an entry, one line each: schema, then (submitted entries) evidence and protocol."""
    errors = schema_errors(entry)
    if errors or not is_submitted(entry):
        return errors
    errors = evidence_errors(entry)
    return errors + (protocol_errors(entry, board) if board is not None else [])


def load_submitted(dest: str | Path, board: dict[str, Any]) -> list[dict[str, Any]]:
    """The submitted entries kept in ``dest/entries``, checked against ``board``; raises on the first bad one,
    naming the file and what is wrong (nothing is written then)."""
    out = []
    for path in sorted((Path(dest) / "entries").glob("*.json")):
        entry = read_entry(path)
        if not is_submitted(entry):
            continue
        errors = entry_errors(entry, board)
        if errors:
            raise ValueError(f"{path} cannot be merged into this leaderboard: {errors[0]}"
                             + (f" (and {len(errors) - 1} more; run `bench validate {path}`)" if len(errors) > 1 else ""))
        out.append(Entry.from_dict(entry).to_dict())
    clash = {(e["method"], e["scenario"]) for e in out} & {(e["method"], e["scenario"]) for e in board["entries"]}
    if clash:
        raise ValueError("submitted entries clash with the run's: " + ", ".join(f"{m} ({s})" for m, s in sorted(clash))
                         + "; rename the submitted method")
    return out
