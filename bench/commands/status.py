"""``bench status RUN_DIR [RUN_DIR ...]``: where each run folder stands (``bench.run.status``): running or not, the
task under way, tasks done / failed / to go per kind, the time left; for a run left in the background or split into
several folders."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Container

from rich.markup import escape
from rich.table import Table

from bench.commands._progress import clock_time
from bench.commands._ui import add_format_option, wants_json, wide_console
from bench.core.storage import StoreDamaged
from bench.run.status import RunStatus, run_status


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def show(status: RunStatus, console) -> None:
    head = f"[bold]{escape(status.run_dir)}[/bold]" + (f" (suite {status.suite})" if status.suite else "")
    if status.holder:
        console.print(f"{head}: running, {escape(status.holder)}", highlight=False)
        for label, seconds, step in status.computing:
            console.print(f"  computing {escape(label)} for {clock_time(seconds)}" + (
                f", at {escape(step['label'])} {step['done']}/{step['total']} "
                f"({clock_time(step['seconds_ago'])} ago)" if step else ""), highlight=False)
    else:
        console.print(f"{head}: not running; `bench run` with its suite, settings and this --out resumes it",
                      highlight=False, soft_wrap=True)
    if not status.planned:
        console.print("  what is left is not known: this folder's runs did not record their plan (a run of this "
                      "version records it when it starts, and resumes what is done)", highlight=False, soft_wrap=True)
    else:
        console.print(f"  last started {_when(status.started)} at revision {(status.revision or 'unknown')[:7]}: "
                      f"{status.total('done')} done, {status.total('failed')} failed, {status.total('to_go')} to go",
                      highlight=False)
    table = Table("  kind", box=None, padding=(0, 2))
    for column in ("done", "failed", "to go"):
        table.add_column(column, justify="right")
    for kind, counts in status.kinds.items():
        table.add_row("  " + kind, *(str(counts[k]) for k in ("done", "failed", "to_go")))
    console.print(table)
    if status.methods:
        console.print("  " + methods_line(status.methods, status.protecting()), highlight=False, soft_wrap=True)
    for label, error in status.failed[:10]:
        console.print(f"  [red]failed[/red] {escape(label)}: {escape(error)}", highlight=False, soft_wrap=True)
    if len(status.failed) > 10:
        console.print(f"  ... and {len(status.failed) - 10} more failed (bench leaderboard shows them per cell)")
    if status.planned and status.total("to_go"):
        pace = "each task weighed by its dry-run price" if status.priced else \
            "every task counted alike (no dry run priced them: `bench run ... --dry-run` with the same settings)"
        if status.seconds_left is None:
            console.print(f"  time left: not known before its first task finishes ({pace})", highlight=False,
                          soft_wrap=True)
        else:
            when = "so far" if status.holder else "while it ran"
            console.print(f"  time left: {clock_time(status.seconds_left)} at the pace of its last start {when}, "
                          f"{pace}", highlight=False, soft_wrap=True)


def methods_line(methods: dict[str, list[int]], protecting: Container[str] = frozenset()) -> str:
    """"methods: 14 protected every user, 1 under way (cw 3/10), 38 not started"; a method is under way from the
    moment its first user's protect task computes (``protecting``)."""
    complete = [m for m, (done, planned) in methods.items() if done == planned]
    under_way = [f"{m} {done}/{planned}" for m, (done, planned) in methods.items()
                 if 0 < done < planned or (done == 0 and m in protecting)]
    waiting = len(methods) - len(complete) - len(under_way)
    return (f"methods: {len(complete)} protected every user, {len(under_way)} under way"
            + (f" ({', '.join(under_way)})" if under_way else "") + f", {waiting} not started")


def run(args) -> int:
    statuses = []
    for folder in args.run_dirs:
        try:
            statuses.append(run_status(folder))
        except (FileNotFoundError, StoreDamaged) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if wants_json(args):
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return 0
    console = wide_console()
    for status in statuses:
        show(status, console)
    if len(statuses) > 1:
        console.print(together_line(statuses), highlight=False, soft_wrap=True)
    return 0


def together_line(statuses: list[RunStatus]) -> str:
    """One line for the folders of a run split in parts (e.g. one per core): their counts summed and, while every
    part with work left runs, when the last one ends."""
    line = (f"all {len(statuses)} folders: " + ", ".join(f"{sum(s.total(k) for s in statuses)} {word}" for k, word in
                                                        (("done", "done"), ("failed", "failed"), ("to_go", "to go"))))
    left = [s for s in statuses if s.total("to_go")]
    if left and all(s.holder and s.seconds_left is not None for s in left):
        line += f"; the last of them ends in {clock_time(max(s.seconds_left for s in left))} at their pace"
    return line


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="where a run folder stands: running or not, tasks done / failed / to go, "
                                      "time left")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the --out folder of a `bench run` (one or more)")
    add_format_option(p)
    p.set_defaults(func=run)
