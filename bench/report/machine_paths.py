"""A board with no path of the machine that made it: what is published, and what boards of several machines are
compared on when they are merged (a run folder here, a board published elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.core.paths import bench_home


def _machine_roots(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(absolute folder of this machine, the name published in its place), longest first: the weights cache,
    the data folder the run read, this checkout, the home folder."""
    roots = [(str(bench_home()), "$BENCH_HOME"), (str(Path.home()), "~"),
             (str(Path(__file__).resolve().parents[2]), "<cloakbench>")]  # e.g. the built-in LFW subset
    data_root = str((board["run"].get("data") or {}).get("root") or "")
    dataset = (board["run"].get("protocol") or {}).get("dataset")
    if dataset and f"/{dataset}/" in data_root:  # e.g. /srv/data/lfw/images -> $BENCH_DATA/lfw/images
        roots.append((data_root.split(f"/{dataset}/")[0], "$BENCH_DATA"))
    if os.environ.get("BENCH_DATA"):
        roots.append((str(Path(os.environ["BENCH_DATA"]).resolve()), "$BENCH_DATA"))
    return sorted({r for r in roots if r[0] not in ("", "/")}, key=lambda r: -len(r[0]))


def without_machine_paths(board: dict[str, Any]) -> dict[str, Any]:
    """The board with no path of the machine that made it: run folders by name only, cache, data and home
    folders by the variable that names them (the numbers are untouched)."""
    roots = _machine_roots(board)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            for root, name in roots:
                value = value.replace(root, name)
        return value

    def run_names(run: dict[str, Any]) -> dict[str, Any]:
        source = run.get("source")
        if source is None:
            return run
        return {**run, "source": [Path(s).name for s in source] if isinstance(source, list) else Path(source).name}

    board = scrub(board)
    entries = [{**e, "run": run_names(e["run"])} if isinstance(e.get("run"), dict) else e for e in board["entries"]]
    return {**board, "run": run_names(board["run"]), "entries": entries}
