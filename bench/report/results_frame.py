"""A leaderboard as a tidy pandas DataFrame: one row per method x scenario x target x adversary x metric.

Column names are plain identifiers (``method``, ``target``, ``metric``, ``value``, ``ci_low`` ...), so
``df.query("metric == 'psr_top1' and adversary == 'jpeg-75'")`` and ``df.pivot_table(...)`` work without the
composite names of the CSV export. Summary measures of an entry (the worst cell, SSIM, LPIPS, cost) have no
target and adversary: those columns hold ``None`` there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.validation import read_json
from bench.measures.registry import METRICS, PSR_PREFIX

HEADLINE = METRICS.headline()  # the measure whose per-user values every interval and rank is bootstrapped from
# Cell fields that are not PSR values: an interval (``<metric>_ci``) belongs to its metric's row.
_CELL_COUNTS = ("missed",)
# Entry fields that summarise the cells or describe the method, not measures.
_ENTRY_FACTS = {"method", "kind", "scenario", "status", "reason", "budget", "config", "overrides", "psr", "device",
                "seeds", "protocol", "space", "reference", "reported", HEADLINE.per_user_field, "rank",
                "adversary_kinds", "unseen_targets", "surrogates", f"psr_{HEADLINE.name}_by_adversary",
                "authorized_accuracy", "users", "probes"}
COLUMNS = ["method", "kind", "scenario", "target", "adversary", "metric", "value", "ci_low", "ci_high", "users",
           "rank"]
USER_COLUMNS = ["method", "kind", "scenario", "target", "adversary", "user", "metric", "value"]


def load_board(where: str | os.PathLike) -> dict[str, Any]:
    """The leaderboard of a run folder (rebuilt from its store) or of a folder holding a ``leaderboard.json``
    (a published ``results/`` folder)."""
    path = Path(where)
    if (path / "store.sqlite").exists():
        from bench.report import leaderboard

        return leaderboard.build_runs([path])
    if (path / "leaderboard.json").exists():
        return read_json(path / "leaderboard.json", "give the --out folder of a `bench run`, or results/")
    raise FileNotFoundError(f"{where} is neither a run folder (holding store.sqlite) nor a results folder (holding "
                            "leaderboard.json); give the --out folder of a `bench run`, or results/")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"method": entry["method"], "kind": entry.get("kind"), "scenario": entry["scenario"],
            "users": entry.get("users"), "rank": entry.get("rank")}
    rows = []
    for target, by_adversary in (entry.get("psr") or {}).items():
        for adversary, cell in by_adversary.items():
            for key, value in cell.items():
                if key.endswith("_ci") or not _number(value):
                    continue
                ci = cell.get(f"{key}_ci") or (None, None)
                metric = key if key in _CELL_COUNTS else PSR_PREFIX + key
                rows.append({**base, "target": target, "adversary": adversary, "metric": metric, "value": value,
                             "ci_low": ci[0], "ci_high": ci[1]})
    for target, value in (entry.get("authorized_accuracy") or {}).items():
        if _number(value):
            rows.append({**base, "target": target, "adversary": None, "metric": "authorized_accuracy",
                         "value": value, "ci_low": None, "ci_high": None})
    for key, value in entry.items():
        if key in _ENTRY_FACTS or key.endswith("_ci") or not _number(value):
            continue
        ci = entry.get(f"{key}_ci") or (None, None)
        rows.append({**base, "target": None, "adversary": None, "metric": key, "value": value, "ci_low": ci[0],
                     "ci_high": ci[1]})
    return rows


def _user_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for cell, per_user in (entry.get(HEADLINE.per_user_field) or {}).items():
        target, adversary = cell.split("|", 1)
        rows += [{"method": entry["method"], "kind": entry.get("kind"), "scenario": entry["scenario"],
                  "target": target, "adversary": adversary, "user": user, "metric": HEADLINE.row, "value": value}
                 for user, value in per_user.items()]
    return rows


def tidy(board: dict[str, Any], per_user: bool = False) -> pd.DataFrame:
    """The board in long form. ``per_user=True``: one row per user of each cell (PSR@1, the values every
    interval and rank is bootstrapped from) in place of the aggregates. Entries that did not finish yield no
    rows; they are listed with their reason in ``df.attrs["not_measured"]``."""
    rows: list[dict[str, Any]] = []
    for entry in board["entries"]:
        rows += _user_rows(entry) if per_user else _rows(entry)
    frame = pd.DataFrame(rows, columns=USER_COLUMNS if per_user else COLUMNS)
    frame.attrs["not_measured"] = {f"{e['method']} ({e['scenario']})": e.get("reason") or e["status"]
                                   for e in board["entries"] if e["status"] != "ok"}
    return frame


__all__ = ["COLUMNS", "USER_COLUMNS", "load_board", "tidy"]
