"""``bench check RUN_DIR --baseline FILE`` (exit 1 on a regression) or ``--update-baseline FILE`` (write it)."""

from __future__ import annotations

import sys

from rich.markup import escape
from rich.table import Table

from bench.commands._ui import wide_console
from bench.report import gate as check
from bench.report.formatting import number, signed


def _cell(value, metric: str) -> str:
    return value if isinstance(value, str) else number(value, check.value_format(metric))


def _tolerance(value) -> str:
    return "" if value is None else value if isinstance(value, str) else f"{value:g}"


def run(args) -> int:
    console = wide_console()
    try:
        board = check.load_leaderboard(args.run_dir)
        if args.update_baseline:
            path = check.write_baseline(board, args.update_baseline)
            console.print(f"wrote baseline {path} ({len(check.reduce_board(board)['methods'])} methods)")
            return 0
        baseline = check.load_baseline(args.baseline)
        findings = check.compare(baseline, board, args.tolerance, check.parse_tolerances(args.quality_tolerance))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = [f for f in findings if f.failed]
    if findings:
        table = Table(title=escape(f"{args.run_dir} against {args.baseline}"))
        for col in ("method", "metric", "baseline", "now", "delta", "tolerance", "verdict"):
            table.add_column(col, overflow="fold", justify="right" if col in ("baseline", "now", "delta",
                                                                            "tolerance") else "left")
        for f in findings:
            verdict = f"[red]FAIL[/red] {escape(f.note)}" if f.failed else f"[cyan]new[/cyan] {escape(f.note)}"
            table.add_row(escape(f.method), escape(f.metric), escape(_cell(f.baseline, f.metric)),
                          escape(_cell(f.now, f.metric)),
                          signed(f.delta, check.value_format(f.metric)), _tolerance(f.tolerance), verdict)
        console.print(table)
    methods = len(baseline["methods"])
    if failures:
        console.print(f"[red]check failed[/red]: {len(failures)} failure(s) against {methods} "
                      "baseline method(s). If the change is intended, update the baseline with "
                      f"`bench check {args.run_dir} --update-baseline {args.baseline}`.")
        return 1
    rule = ("the users' spread" if args.tolerance is None else f"\u00b1{args.tolerance:g}")
    console.print(f"check passed: {methods} baseline method(s) within tolerance (PSR: {rule})"
                  + (f"; {len(findings)} new item(s) reported" if findings else ""))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="compare a run's leaderboard to a baseline (CI regression check)")
    p.add_argument("run_dir", help="run folder holding leaderboard.json")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--baseline", help="baseline JSON to compare against (e.g. results/baseline.json)")
    mode.add_argument("--update-baseline", metavar="FILE", help="write the run's reduced leaderboard as the baseline")
    p.add_argument("--tolerance", type=float, default=None,
                   help="a fixed absolute PSR tolerance, as a fraction (e.g. 0.05), instead of the default rule: "
                   "a PSR fails when the paired 95%% bootstrap interval of its change over the same users excludes 0 "
                   "(or, without per-user values, when it leaves the baseline's 95%% interval)")
    p.add_argument("--quality-tolerance", nargs="+", metavar="METRIC=VALUE",
                   help="absolute tolerances of the checked metrics, default " +
                   " ".join(f"{k}={v:g}" for k, v in check.default_tolerances().items()))
    p.set_defaults(func=run)
