"""``bench report RUN_DIR [--out FILE]``: a self-contained HTML report (table, plots, examples) of one run."""

from __future__ import annotations

import sys

from bench.report import html as report


def run(args) -> int:
    try:
        path = report.write_report(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write a static HTML report (leaderboard, plots, example crops) of a run")
    p.add_argument("run_dir", help="run folder holding leaderboard.json (from `bench leaderboard`)")
    p.add_argument("--out", default=None, help="HTML file to write (default: RUN_DIR/report.html)")
    p.set_defaults(func=run)
