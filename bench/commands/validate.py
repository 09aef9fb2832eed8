"""``bench validate ENTRY [--board DIR]``: check an entry's JSON against the entry schema and, for a submitted
entry, its evidence and the protocol of the leaderboard it is meant for (docs/submitting.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.report.result_schema import SCHEMA_FILE
from bench.report.submissions import entry_errors, is_submitted, read_entry


def _board(entry_path: Path, board_dir: str | None) -> dict | None:
    """The leaderboard the entry is checked against: --board, else the published folder the entry sits in."""
    folder = Path(board_dir) if board_dir else entry_path.resolve().parent.parent
    path = folder / "leaderboard.json"
    if not path.is_file():
        if board_dir:
            raise FileNotFoundError(f"{path} not found: --board names a published folder (e.g. results/)")
        return None
    return json.loads(path.read_text())


def run(args) -> int:
    failed = False
    for name in args.entries:
        try:
            entry = read_entry(name)
            board = _board(Path(name), args.board)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        errors = entry_errors(entry, board)
        for error in errors:
            print(f"{name}: {error}")
        if errors:
            failed = True
            continue
        what = "submitted entry" if is_submitted(entry) else "entry"
        against = (f", on the protocol of {args.board or Path(name).resolve().parent.parent}"
                   if board is not None and is_submitted(entry) else "")
        print(f"{name}: valid {what} ({SCHEMA_FILE}{against})")
    return 1 if failed else 0


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="check leaderboard entries (e.g. a submission) against the entry schema")
    p.add_argument("entries", nargs="+", metavar="ENTRY", help="an entry's JSON file")
    p.add_argument("--board", metavar="DIR", default=None,
                   help="published folder whose protocol a submitted entry must match (default: the folder the "
                        "entry's entries/ sits in, when it has a leaderboard.json)")
    p.set_defaults(func=run)
