"""What the HTML report reads: ``RUN_DIR/leaderboard.json`` (made tolerant of missing fields) and example crops.

Every part of the report (table, charts, page) takes the board through ``normalise`` and reads cells with the
accessors here, so a missing or malformed value shows as "n/a" instead of breaking the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.validation import read_json
from bench.measures.registry import METRICS
from bench.report.formatting import finite

HEADLINE = METRICS.headline()


def get(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]... or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def load_board(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "leaderboard.json"
    board = read_json(path, f"run `bench leaderboard {run_dir}` first (it writes the JSON)",
                      f"regenerate it with `bench leaderboard {run_dir}`")
    if not isinstance(board, dict) or not isinstance(board.get("entries"), list):
        raise ValueError(f"{path} has no 'entries' list; regenerate it with `bench leaderboard {run_dir}`")
    return normalise(board)


def normalise(board: dict[str, Any]) -> dict[str, Any]:
    """Entries as dicts that each have a method name; targets and adversaries as lists (missing -> empty)."""
    entries = [dict(e) for e in board.get("entries") or [] if isinstance(e, dict)]
    scenarios = {e.get("scenario") for e in entries if e.get("scenario")}
    for i, e in enumerate(entries):
        e["method"] = str(e.get("method") or f"entry {i + 1}")
        # one entry per method and scenario: name the scenario when a run has several
        several = len(scenarios) > 1 and e.get("scenario")
        e["label"] = f"{e['method']} ({e['scenario']})" if several else e["method"]
    targets = board.get("targets") if isinstance(board.get("targets"), list) else []
    adversaries = board.get("adversaries") if isinstance(board.get("adversaries"), list) else []
    return {**board, "entries": entries, "targets": [str(t) for t in targets],
            "adversaries": [str(a) for a in adversaries]}


def load_examples(run_dir: Path, methods: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """method -> (clean, protected) uint8 K x H x W x 3 from RUN_DIR/examples/<method>.npz, where present."""
    out = {}
    folder = Path(run_dir) / "examples"
    for method in methods:
        path = folder / f"{method}.npz"
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as data:
            if "clean" not in data or "protected" not in data:
                raise ValueError(f"{path} needs arrays 'clean' and 'protected' (uint8 K x H x W x 3)")
            clean, protected = data["clean"], data["protected"]
        if clean.shape != protected.shape or clean.ndim != 4 or clean.shape[-1] != 3:
            raise ValueError(f"{path}: 'clean' {clean.shape} and 'protected' {protected.shape} must both be "
                             "K x H x W x 3")
        out[method] = (clean.astype(np.uint8), protected.astype(np.uint8))
    return out


def psr_cell(entry: dict, target: str, adversary: str) -> dict:
    cell = get(entry, "psr", target, adversary)
    return cell if isinstance(cell, dict) else {}


def psr_value(entry: dict, target: str, adversary: str, measure: str = HEADLINE.name) -> float | None:
    """One PSR of a cell (the headline measure unless ``measure`` names another), None where missing."""
    return finite(psr_cell(entry, target, adversary).get(measure))


def is_ok(entry: dict) -> bool:
    return entry.get("status", "ok") == "ok"


def white_box(board: dict) -> set[str]:
    """Targets the methods saw (surrogates, or a surrogate's weights): their PSR is an upper bound."""
    return {t for t, info in (board.get("target_info") or {}).items() if isinstance(info, dict) and info.get("white_box")}
