"""``bench leaderboard RUN_DIR --format csv|md|json``: regenerate the leaderboard from a run's store;
``bench leaderboard RUN_DIR [RUN_DIR ...] --publish results/``: publish one run, or several of one protocol merged."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.report import adaptive_table, leaderboard, method_table, publish
from bench.report import html as report


def check_run_folder(folder: str, publishing: bool = False) -> None:
    """A folder this command can read, or a message that says what the folder is and what to give instead. A
    published folder is read when publishing: its views are regenerated and submitted entries merged."""
    path = Path(folder)
    if (path / "store.sqlite").exists() or (publishing and (path / "leaderboard.json").exists()):
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; give the --out folder of a `bench run`")
    if (path / "leaderboard.json").exists():
        raise ValueError(f"{folder} holds a published leaderboard, not a run (no store.sqlite): its files are already "
                         f"written. `bench report {folder}` draws it, `bench compare {folder} A B` compares two "
                         f"methods; `bench leaderboard {folder} --publish {folder}` regenerates its views and merges "
                         "submitted entries")
    raise FileNotFoundError(f"{folder} is not a run folder (no store.sqlite); give the --out folder of a `bench run`")


def run(args) -> int:
    try:
        for folder in args.run_dirs:
            check_run_folder(folder, publishing=bool(args.publish))
        if args.publish:
            written = publish.publish(args.run_dirs, args.publish, args.readme, args.examples)
            docs = []  # a doc's generated table, and its chart beside it
            if args.method_table:
                docs += method_table.write(Path(args.publish), Path(args.method_table))
            if args.adaptive_table:
                docs += adaptive_table.write(Path(args.publish), Path(args.adaptive_table))
            print(f"published {len(written)} files to {args.publish}"
                  + "".join(f"; wrote {path}" for path in docs))
            return 0
        if args.readme or args.method_table or args.adaptive_table or args.examples is not None:
            raise ValueError("--readme, --method-table, --adaptive-table and --examples go with --publish: they "
                             "shape the published leaderboard")
        if len(args.run_dirs) > 1:
            raise ValueError("several run folders are merged only when published: add --publish DIR")
        paths = leaderboard.write(args.run_dirs[0], tuple(f for f in args.format if f != "html"))
        if "html" in args.format:
            paths["html"] = report.write_report(args.run_dirs[0])
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for fmt, path in paths.items():
        if args.print and fmt in args.format and fmt != "html":
            print(path.read_text())
        else:
            print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("leaderboard", help="regenerate leaderboard files from a run folder's store")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run folder; with --publish, several runs of one protocol are merged")
    p.add_argument("--format", nargs="+", default=["csv", "md", "json"], choices=["csv", "md", "json", "html"],
                   help="formats to write (html = the report of `bench report`)")
    p.add_argument("--print", action="store_true", help="also print the files")
    p.add_argument("--publish", metavar="DIR",
                   help="write the published copy (leaderboard.* and entries/*.json) to DIR, e.g. results/; "
                        "entries are regenerated whole")
    p.add_argument("--examples", type=int, metavar="N",
                   help="with --publish: at most N example crops per method in DIR/examples (default: as the runs "
                        "wrote them; 0: none, e.g. for the method table's 61 methods, 1 MB each)")
    p.add_argument("--readme", metavar="FILE",
                   help="with --publish: also write the published Markdown leaderboard (table, notes, generated "
                        "reading) into FILE between <!-- results:begin --> and <!-- results:end -->")
    p.add_argument("--method-table", metavar="FILE",
                   help="with --publish: also write the method table (bench/report/method_table.py) of the published run "
                        "into FILE between <!-- method-table:begin --> and <!-- method-table:end -->, e.g. "
                        "docs/methods.md")
    p.add_argument("--adaptive-table", metavar="FILE",
                   help="with --publish: also write the before/after table (bench/report/adaptive_table.py) of the "
                        "published run, every method x target x scenario against each adversary, into FILE between "
                        "<!-- adaptive-table:begin --> and <!-- adaptive-table:end -->, e.g. docs/adversaries.md")
    p.set_defaults(func=run)
