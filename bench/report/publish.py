"""The published copy of a leaderboard (RobustBench style): ``results/`` holds leaderboard.{json,csv,md}, the entry
schema (``schema/entry-v1.json``) and one JSON per entry, and the README shows the Markdown leaderboard between
markers. Entries from runs are regenerated whole on every publish and validated against the schema; submitted
entries (``bench.report.submissions``) are kept and ranked with them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bench.measures.ranking import rank_entries, stability
from bench.report.leaderboard import FILES, build_runs, to_json, write_board
from bench.report.machine_paths import without_machine_paths
from bench.report.result_schema import SCHEMA_ID, schema_errors, write_schema
from bench.report.submissions import is_submitted, load_submitted, read_entry
from bench.report.tables import PRIMARY_SCORE


def publish(run_dirs: str | Path | list[str | Path], dest: str | Path, readme: str | Path | None = None,
            examples: int | None = None) -> list[Path]:
    """Publish runs as generated data (RobustBench style): leaderboard.{json,csv,md}, the entry schema and one
    JSON per entry (method and scenario) with its numbers, configuration, seeds, code version and environment.
    Several runs of one protocol are merged into one leaderboard (``merge``); submitted entries already in
    ``dest/entries`` are kept and ranked with them (``bench.report.submissions``). With ``readme``, the Markdown
    leaderboard (its table, notes and reading) also replaces that file's ``results`` block (``readme_markers``).
    ``examples``: at most that many example crops per method are published (None: as the runs wrote them; 0: none,
    for a board of many methods whose crops would weigh more than its numbers)."""
    run_dirs = [Path(d) for d in (run_dirs if isinstance(run_dirs, list) else [run_dirs])]
    written = publish_board(build_runs(run_dirs), dest) + _copy_examples(run_dirs, Path(dest), examples)
    if readme is not None:
        written.append(write_readme_block(Path(readme), (Path(dest) / FILES["md"][0]).read_text()))
    return written


def readme_markers(name: str = "results") -> tuple[str, str]:
    """The markers around a generated block of the README (``results``: the published leaderboard)."""
    return f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"


def readme_block(text: str, name: str = "results") -> str:
    """A generated block of a README's text, between ``readme_markers(name)``."""
    begin, end = readme_markers(name)
    if begin not in text or end not in text:
        raise ValueError(f"no {begin.strip()} ... {end} block: add the two markers where the block goes")
    return text.split(begin, 1)[1].split(end, 1)[0]


def write_readme_block(readme: Path, markdown: str, name: str = "results") -> Path:
    text = readme.read_text()
    begin, end = readme_markers(name)
    readme.write_text(text.replace(begin + readme_block(text, name) + end, begin + markdown + end))
    return readme


def _with_submitted(board: dict[str, Any], dest: Path) -> dict[str, Any]:
    """The board with the submitted entries kept in ``dest`` ranked among its own (unchanged without any)."""
    submitted = load_submitted(dest, board)
    if not submitted:
        return board
    entries = [*board["entries"], *submitted]
    entries.sort(key=lambda e: (e["status"] != "ok", -(e.get(PRIMARY_SCORE) or -1)))
    rank_entries(entries)
    return {**board, "entries": entries, "stability": stability(entries)}


def _copy_examples(run_dirs: list[Path], dest: Path, examples: int | None = None) -> list[Path]:
    """The runs' example crops (``examples/<method>.npz``), for the published report: at most ``examples`` of
    each method's (None: all)."""
    written: list[Path] = []
    if examples == 0:
        return written
    for run_dir in run_dirs:
        for path in sorted((run_dir / "examples").glob("*.npz")):
            if run_dir.resolve() == dest.resolve():
                continue
            (dest / "examples").mkdir(parents=True, exist_ok=True)
            if examples is None:
                shutil.copyfile(path, dest / "examples" / path.name)
            else:
                with np.load(path) as crops:
                    np.savez_compressed(dest / "examples" / path.name, **{k: crops[k][:examples] for k in crops.files})
            written.append(dest / "examples" / path.name)
    return written


def publish_board(board: dict[str, Any], dest: str | Path) -> list[Path]:
    """Write a board as a published folder: every entry from a run is regenerated and validated against the
    entry schema; submitted entries are kept as they were submitted; no path of this machine is written."""
    dest = Path(dest)
    board = _with_submitted(board, dest)  # checked before anything is written
    name = dest.resolve().name
    board = without_machine_paths({**board, "run": {**board["run"], "board": board["run"].get("suite") if name == "results"
                                                    else name}})
    run_facts = {k: board["run"].get(k) for k in ("suite", "created", "environment", "data", "surrogates",
                                                  "invocations", "protocol", "users")}
    files = {}
    for e in board["entries"]:
        if is_submitted(e):
            continue
        facts = {**run_facts, **e.get("run", {})}  # a merged entry carries its own run's suite and environment
        entry = {"schema": SCHEMA_ID, "origin": "run", **e, "run": facts, "targets": board["targets"],
                 "adversaries": board["adversaries"]}
        errors = schema_errors(json.loads(to_json(entry)))
        if errors:
            raise ValueError(f"entry {e['method']} ({e['scenario']}) breaks the entry schema: {errors[0]}")
        files[f"{e['method']}--{e['scenario']}.json"] = entry
    entries_dir = dest / "entries"
    entries_dir.mkdir(parents=True, exist_ok=True)
    for old in entries_dir.glob("*.json"):
        if not is_submitted(read_entry(old)):
            old.unlink()  # run entries are regenerated whole: a method dropped from the run leaves no stale file
    written = []
    for name, entry in files.items():
        (entries_dir / name).write_text(to_json(entry))
        written.append(entries_dir / name)
    return written + [write_schema(dest)] + list(write_board(board, dest).values())
