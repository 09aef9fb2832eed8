"""What the commands share: a console whose tables stay readable when output is piped (rich assumes 80 columns),
one ``--format`` option (``--json`` kept as its short form), DataFrames and leaderboards as rich tables."""

from __future__ import annotations

import argparse

from rich.console import Console


def wide_console() -> Console:
    return Console(width=max(140, Console().width))


def add_format_option(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json"),
                      what: str = "") -> None:
    """``--format table|json[|...]`` and ``--json`` as the same as ``--format json``."""
    parser.add_argument("--format", choices=choices, default=choices[0],
                        help=f"{' or '.join(choices)} (default {choices[0]}){what}")
    parser.add_argument("--json", action="store_true", help="the same as --format json")


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False)) or getattr(args, "format", None) == "json"


def frame_table(frame, title: str | None = None, caption: str | None = None):
    """A DataFrame of text cells as a rich Table: headers and cells kept as they are (no markup, no number
    highlighting inside words such as ``PSR@1``), columns after the first right-aligned."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption=caption, highlight=False)
    for i, column in enumerate(frame.columns):
        table.add_column(Text(str(column)), justify="left" if i < 4 else "right", overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return table


def print_board(board: dict, console: Console) -> None:
    """The leaderboard as a rich table, then its notes and reading (as the Markdown file has them)."""
    from bench.report import tables

    frame = tables.display_frame(board)
    cells = "/".join(board["adversaries"])  # target columns hold one PSR@1 per adversary: said once, in the caption
    frame = frame.rename(columns={f"{t} ({cells})": t for t in board["targets"]})
    console.print(frame_table(frame, title=f"{board['run'].get('suite') or ''} leaderboard",
                              caption=f"per target: PSR@1 in % under {' / '.join(board['adversaries'])}"))
    for e in board["entries"]:
        if e["status"] == "unavailable":
            console.print(f"{e['method']} ({e['scenario']}): unavailable: {e.get('reason')}", highlight=False,
                          markup=False)
    notes = tables.to_markdown(board).partition("\n\n")[2]  # the Markdown after its table: notes and reading
    console.print(notes, highlight=False, markup=False, soft_wrap=True)
