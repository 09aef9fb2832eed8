"""``bench run --suite NAME [--out DIR]``: run a suite (resuming from the run store), print and write results."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench import leaderboard, report, tables
from bench.commands._ui import wide_console
from bench.data import DataError
from bench.metrics import PROTOCOLS
from bench.registry import ConfigError, UnknownNameError
from bench.runner import Reporter, Runner
from bench.store import RunFolderBusy
from bench.suites import SPLITS, Suite, get_suite
from bench.validate import UsageError


class RichReporter(Reporter):
    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[item]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
        )
        self.task_id = None

    def phase(self, name: str, total: int) -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, visible=False)
        self.task_id = self.progress.add_task(name, total=total, item="")

    def advance(self, label: str = "") -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, advance=1, item=label)

    def message(self, text: str) -> None:
        self.progress.console.print(text)


class LogReporter(Reporter):
    """Progress as plain lines when the output is not a terminal (batch jobs, cluster and CI logs), where a
    live bar would print nothing until the end: a line at most every ``every`` seconds and at a phase's end."""

    def __init__(self, console: Console, every: float = 30.0):
        self.console, self.every = console, every
        self.name, self.total, self.done, self.start, self.last = "", 0, 0, 0.0, 0.0

    def phase(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.start = self.last = time.monotonic()

    def advance(self, label: str = "") -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last < self.every and 1 < self.done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done)
        self.console.print(f"{self.name} {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%) "
                           f"elapsed {_clock(elapsed)} ETA {_clock(eta)} {label}", highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)  # one line per message: logs are read and grepped line by line


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def parse_value(text: str):
    """A config value from the command line: JSON (3, 0.5, true, "x", [1, 2]), a fraction such as 16/255, or
    else the text itself."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an integer too long to convert, or nested too deep
        pass
    num, sep, den = text.partition("/")
    if sep:
        try:
            return float(num) / float(den)
        except (ValueError, ZeroDivisionError, OverflowError):
            pass
    return text


def method_overrides(base: dict, settings: list[str]) -> dict:
    """``METHOD.KEY=VALUE`` settings merged over a suite's method overrides (the keys are checked when the
    method is built, with the list of valid ones)."""
    merged = {m: dict(v) for m, v in base.items()}
    for item in settings:
        target, eq, value = item.partition("=")
        method, dot, key = target.rpartition(".")
        if not (eq and dot and method and key):
            raise UsageError(f"--set takes METHOD.KEY=VALUE (e.g. pgd.steps=50 or chameleon.epsilon=8/255), got "
                             f"{item!r}")
        merged.setdefault(method, {})[key] = parse_value(value)
    return merged


def requested_suite(args) -> Suite:
    """The suite named by ``--suite`` with the command line's overrides; raises ``KeyError`` for an unknown
    suite and :class:`UsageError` for a bad value."""
    suite = get_suite(args.suite)
    changes = {"users": args.users, "gallery_identities": args.gallery_identities}
    for name in ("methods", "targets", "adversaries", "surrogates", "scenarios"):
        text = getattr(args, name)
        if text is not None:
            changes[name] = tuple(part for part in text.split(",") if part)
    if args.protocol:
        changes["protocol"] = args.protocol
    if args.split:
        if args.split not in SPLITS:
            raise UsageError(f"unknown split preset {args.split!r}; known: {', '.join(SPLITS)}")
        changes["split"] = SPLITS[args.split]
    if args.set:
        changes["method_overrides"] = method_overrides(suite.method_overrides, args.set)
    return suite.with_overrides(**changes)


def run(args) -> int:
    console = wide_console()
    try:
        suite = requested_suite(args)
    except KeyError as exc:
        console.print(f"[red]{escape(exc.args[0])}[/red]", soft_wrap=True)
        return 2
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    out = Path(args.out or f"runs/{suite.name}")
    reporter = RichReporter(console) if console.is_terminal else LogReporter(console)
    runner = Runner(suite, out, data_root=args.data_root, device=args.device, threads=args.threads, reporter=reporter,
                    wait=not args.no_wait)
    t0 = time.perf_counter()
    started = time.time()
    try:
        with reporter.progress if isinstance(reporter, RichReporter) else contextlib.nullcontext():
            runner.run()
    except (UnknownNameError, ConfigError, ValueError, FileNotFoundError, DataError, RunFolderBusy) as exc:
        console.print("[red]error:[/red] " + escape(" ".join(str(exc).split())), highlight=False, soft_wrap=True)
        return 2
    board = leaderboard.build(runner.store)
    paths = {**leaderboard.write_board(board, out), "html": report.write_report(out)}
    console.print(tables.to_markdown(board))
    console.print(f"run folder {out} ({time.perf_counter() - t0:.0f} s); wrote "
                  + ", ".join(str(p) for p in paths.values()))
    failed = runner.store.failed_since(started)
    if failed:
        label, error = failed[0]
        console.print(f"[red]{len(failed)} task(s) failed[/red] and count nowhere; first: {label}: "
                      + escape(" ".join((error or "").split())), highlight=False, soft_wrap=True)
        return 1
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a benchmark suite (resumes: finished tasks are skipped)")
    p.add_argument("--suite", default="quick", help="suite name (see `bench list suites`)")
    p.add_argument("--out", help="run folder (default runs/<suite>)")
    p.add_argument("--data-root", help="data root (default: $BENCH_DATA, ../shared/data, embedded LFW subset)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    p.add_argument("--users", type=int, help="override the suite's number of protected users")
    p.add_argument("--gallery-identities", type=int, help="override the suite's gallery size")
    p.add_argument("--methods", help="comma-separated methods instead of the suite's")
    p.add_argument("--targets", help="comma-separated targets instead of the suite's")
    p.add_argument("--adversaries", help="comma-separated adversaries instead of the suite's")
    p.add_argument("--surrogates", help="comma-separated differentiable targets the methods optimise against "
                                        "(Chameleon picks its team among them) instead of the suite's")
    p.add_argument("--scenarios", help="probe, gallery or probe,gallery instead of the suite's")
    p.add_argument("--protocol", choices=PROTOCOLS,
                   help="how probe queries are scored: templates (one per identity) or opom-pairs (OPOM: each query "
                        "vs one clean photo of the user plus distractors, all pairs, top-1/5/10)")
    p.add_argument("--split", help=f"a named split preset instead of the suite's ({', '.join(SPLITS)})")
    p.add_argument("--set", action="append", metavar="METHOD.KEY=VALUE",
                   help="override one config value of a method, e.g. --set opom-class-center.iterations=100 "
                        "(repeatable; `bench list methods --json` shows each method's config)")
    p.add_argument("--no-wait", action="store_true",
                   help="if another run is using the run folder, stop at once (default: wait for it, then reuse "
                        "its finished tasks)")
    p.set_defaults(func=run)
