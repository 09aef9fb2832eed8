"""``bench run --suite NAME [--out DIR]``: run a suite (resuming from the run store), print and write results."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
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
from rich.table import Table

from bench.commands._ui import add_format_option, print_board, wants_json, wide_console
from bench.core.devices import default_threads, resolve_device
from bench.core.validation import UsageError
from bench.data.datasets import DataError, resolve_data_root
from bench.measures.psr import PROTOCOLS
from bench.registry import ADVERSARIES, ConfigError, UnknownNameError
from bench.report import html as report
from bench.report import leaderboard, repeats
from bench.run.executors import LocalExecutor
from bench.run.plugins import validate_names
from bench.run.prepare import check_run_request
from bench.run.runner import Reporter, Runner
from bench.run.store import RunFolderBusy
from bench.run.suites import SPACES, SPLITS, Suite, get_suite


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
    """``NAME.KEY=VALUE`` settings merged over a suite's method (or adversary) overrides (the keys are checked when the
    method is built, with the list of valid ones)."""
    merged = {m: dict(v) for m, v in base.items()}
    for item in settings:
        target, eq, value = item.partition("=")
        method, dot, key = target.rpartition(".")
        if not (eq and dot and method and key):
            raise UsageError(f"--set takes NAME.KEY=VALUE (e.g. pgd.steps=50 or chameleon.epsilon=8/255), got "
                             f"{item!r}")
        merged.setdefault(method, {})[key] = parse_value(value)
    return merged


def one_method_overrides(method: str, settings: list[str]) -> dict:
    """``--set`` of a command that runs one method (``bench protect``): ``NAME.KEY=VALUE`` as in ``bench run``,
    NAME being that method, or ``KEY=VALUE`` for short."""
    named = []
    for item in settings:
        key = item.partition("=")[0]
        if "." in key and not key.startswith(f"{method}."):
            raise UsageError(f"--set {item}: this command runs {method} only; write {method}.KEY=VALUE or KEY=VALUE")
        named.append(item if "." in key else f"{method}.{item}")
    return method_overrides({}, named).get(method, {})


def user_count(text: str) -> int | str:
    """``--users``: a whole number, or ``all``."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--users takes a whole number or all, got {text!r}") from None


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
    for name in ("space", "photo_jpeg_quality"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if args.split:
        if args.split not in SPLITS:
            raise UsageError(f"unknown split preset {args.split!r}; known: {', '.join(SPLITS)}")
        changes["split"] = SPLITS[args.split]
    if args.set:  # NAME.KEY=VALUE: NAME is a registered adversary or else a method of the run
        merged = method_overrides({**suite.method_overrides, **suite.adversary_overrides}, args.set)
        adversaries = set(ADVERSARIES.names())
        changes["method_overrides"] = {k: v for k, v in merged.items() if k not in adversaries}
        changes["adversary_overrides"] = {k: v for k, v in merged.items() if k in adversaries}
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
    if args.dry_run:
        # with --format json, stdout holds the JSON alone: progress and notes go to stderr
        shown = Console(stderr=True, width=console.width) if wants_json(args) else console
        return dry_run(suite, args, out, shown, RichReporter(shown) if shown.is_terminal else LogReporter(shown))
    if args.repeats < 1:
        console.print(f"[red]error:[/red] --repeats {args.repeats} is out of range; allowed: --repeats >= 1")
        return 2
    if args.repeats > 1:
        return run_draws(suite, args, out, console)
    rc, _ = run_one(suite, args, out, console)
    return rc


def run_draws(suite: Suite, args, out: Path, console: Console) -> int:
    """The suite on ``--repeats`` disjoint draws of users, one run folder each, then their spread."""
    try:  # the last draw needs users x repeats eligible identities: say so before any work
        last = suite.with_overrides(draw=args.repeats - 1)
        check_run_request(last, out / f"draw-{args.repeats - 1}", args.data_root, resolve_device(args.device),
                          args.threads)
    except ValueError as exc:
        console.print(f"[red]error:[/red] --repeats {args.repeats}: {escape(str(exc))}", highlight=False,
                      soft_wrap=True)
        return 2
    boards, worst = [], 0
    for draw in range(args.repeats):
        console.print(f"[bold]draw {draw + 1}/{args.repeats}[/bold] ({out / f'draw-{draw}'})")
        try:
            drawn = suite.with_overrides(draw=draw)
        except ValueError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            return 2
        rc, board = run_one(drawn, args, out / f"draw-{draw}", console)
        if board is None:
            return rc
        worst = max(worst, rc)
        boards.append(board)
    result = repeats.spread(boards)
    paths = repeats.write(result, out)
    console.print(repeats.to_markdown(result))
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))
    return worst


def run_one(suite: Suite, args, out: Path, console: Console) -> tuple[int, dict | None]:
    """One run into ``out``: (exit code, its leaderboard, or None when it could not start)."""
    reporter = RichReporter(console) if console.is_terminal else LogReporter(console)
    t0 = time.perf_counter()
    started = time.time()
    try:
        device, threads = device_and_threads(args)
        executor = make_executor(args.executor, args.address, suite)
        runner = Runner(suite, out, data_root=args.data_root, device=device, threads=threads, reporter=reporter,
                        executor=executor, wait=not args.no_wait)
        with reporter.progress if isinstance(reporter, RichReporter) else contextlib.nullcontext():
            runner.run()
    except (UnknownNameError, ConfigError, ValueError, FileNotFoundError, DataError, ImportError,
            RunFolderBusy) as exc:
        console.print("[red]error:[/red] " + escape(" ".join(str(exc).split())), highlight=False, soft_wrap=True)
        return 2, None
    board = leaderboard.build(runner.store)
    paths = {**leaderboard.write_board(board, out), "html": report.write_report(out)}
    print_board(board, console)
    console.print(f"run folder {out} ({time.perf_counter() - t0:.0f} s); wrote "
                  + ", ".join(str(p) for p in paths.values()))
    failed = runner.store.failed_since(started)
    if failed:
        label, error = failed[0]
        console.print(f"[red]{len(failed)} task(s) failed[/red] and count nowhere; first: {label}: "
                      + escape(" ".join((error or "").split()))
                      + ("" if args.debug else " (--debug prints each failed task's traceback)"),
                      highlight=False, soft_wrap=True)
        if args.debug:
            for label, trace in runner.store.tracebacks_since(started):
                console.print(f"[red]{escape(label)}[/red]\n{escape(trace)}", highlight=False)
        return 1, board
    return 0, board


def device_and_threads(args) -> tuple[str, int]:
    """``--device`` resolved (auto: CUDA when present) and ``--threads`` (default: the cores this process may use)."""
    return resolve_device(args.device), default_threads() if args.threads is None else args.threads


def make_executor(name: str, address: str | None, suite):
    if name == "local":
        if address:
            raise ValueError("--address is for --executor ray")
        return LocalExecutor()
    if name == "ray":
        from bench.run.ray_executor import RayExecutor

        return RayExecutor(suite, address=address)
    raise ValueError(f"unknown executor {name!r}: local or ray")


def dry_run(suite, args, out: Path, console: Console, reporter: Reporter) -> int:
    """Plan the suite on file lists and price it from rates measured on this machine (bench/perf/throughput/estimate.py), after
    the checks a run makes before any work (a request the run would refuse fails here the same way)."""
    from bench.perf.estimate import Estimator, KindCost
    from bench.perf.rates import RateCache

    try:
        device, threads = device_and_threads(args)
        check_run_request(suite, out, args.data_root, device, threads)
        validate_names(suite)
        torch.set_num_threads(threads)
        root, how = resolve_data_root(args.data_root)
        console.print(f"data: {root} ({how}); pricing on {device}, {threads} thread(s)")
        estimator = Estimator(suite, root, device, threads, reporter,
                              cache=RateCache(device, threads, remeasure=args.remeasure))
        with reporter.progress if isinstance(reporter, RichReporter) else contextlib.nullcontext():
            estimate = estimator.estimate()
    except (UnknownNameError, ConfigError, ValueError, FileNotFoundError, DataError) as exc:
        console.print("[red]error:[/red] " + escape(" ".join(str(exc).split())), highlight=False, soft_wrap=True)
        return 2
    on_cpu = device == "cpu"
    clock = "cpu" if on_cpu else "wall"
    if wants_json(args):
        print(json.dumps({"suite": suite.name, "device": device, "threads": threads, "clock": clock,
                          "kinds": {k: vars(v) for k, v in estimate.kinds.items()}, "methods": estimate.methods,
                          "seconds": estimate.seconds, "notes": estimate.notes,
                          "unavailable": estimate.unavailable, "adaptation": estimate.adaptation,
                          "rates": estimate.cache}, indent=2))
        return 0

    def idle_wall(seconds: float) -> str:  # CPU time of all threads -> the wall time of an idle machine
        return _clock(seconds) if threads == 1 else f"{_clock(seconds / threads)} to {_clock(seconds)}"

    kinds = Table(title=f"{suite.name}: tasks and estimated time on {device} ({threads} thread(s))")
    for col in ("kind", "tasks", "CPU time" if on_cpu else "wall time", *(("wall time, idle machine",) if on_cpu else ())):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    for kind, cost in [*estimate.kinds.items(), ("all", KindCost(sum(c.tasks for c in estimate.kinds.values()),
                                                                 estimate.seconds))]:
        kinds.add_row(kind, str(cost.tasks), _clock(cost.seconds), *((idle_wall(cost.seconds),) if on_cpu else ()))
    console.print(kinds)
    methods = Table(title="protect tasks per method")
    for col in ("method", "kind", "users", "fit s/user", "protect s/photo", f"{clock} time"):
        methods.add_column(col, justify="left" if col in ("method", "kind") else "right")
    for name, m in sorted(estimate.methods.items(), key=lambda kv: -kv[1]["seconds"]):
        methods.add_row(name, m["kind"], str(m["users"]), f"{m['fit_s_per_user']:.1f}",
                        f"{m['protect_s_per_photo']:.2f}", _clock(m["seconds"]))
    console.print(methods)
    for name, reason in estimate.unavailable.items():
        console.print(f"[yellow]{name} unavailable[/yellow]: {reason}")
    for note in estimate.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"rates measured on this machine, cached in {estimate.cache} (--remeasure to measure again)"
                  + ("; CPU time of the process, all threads: the load of other work does not enter it" if on_cpu
                     else ""))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a benchmark suite (resumes: finished tasks are skipped)")
    p.add_argument("--suite", default="quick", help="suite name (see `bench list suites`)")
    p.add_argument("--out", help="run folder (default runs/<suite>)")
    p.add_argument("--data-root", help="data root (default: $BENCH_DATA, ../shared/data, embedded LFW subset)")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when present, else CPU), cpu, cuda, "
                                                    "cuda:1 ...")
    p.add_argument("--threads", type=int,
                   help="torch threads (default: the cores this process may use; per task with --executor ray)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the tasks per kind and their estimated time from rates measured on this machine "
                        "(cached under $BENCH_HOME/perf), and run nothing")
    p.add_argument("--remeasure", action="store_true", help="with --dry-run: measure the rates again")
    add_format_option(p, what=": with --dry-run, json prints the estimate")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: tasks one after the other in this process; ray: tasks as Ray tasks (pip install "
                        "'cloakbench[ray]'), the run folder on a path every worker shares")
    p.add_argument("--address", help="with --executor ray: the cluster to join (default: start a local one)")
    p.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="run the suite on N disjoint draws of users (OUT/draw-<k>) and report the spread of each "
                        "method's score across draws (OUT/repeats.md)")
    p.add_argument("--users", type=user_count, help="override the suite's number of protected users (a number, or "
                                                   "all: every identity with enough photos)")
    p.add_argument("--gallery-identities", type=int, help="override the suite's gallery size")
    p.add_argument("--methods", help="comma-separated methods instead of the suite's")
    p.add_argument("--targets", help="comma-separated targets instead of the suite's")
    p.add_argument("--adversaries", help="comma-separated adversaries instead of the suite's")
    p.add_argument("--surrogates", help="comma-separated differentiable targets the methods optimise against "
                                        "(Chameleon picks its team among them) instead of the suite's")
    p.add_argument("--scenarios", help="comma-separated among probe, gallery, linkage, linkage-anchored, instead of "
                   "the suite's")
    p.add_argument("--protocol", choices=PROTOCOLS,
                   help="how probe queries are scored: templates (one per identity) or opom-pairs (OPOM: each query "
                        "vs one clean photo of the user plus distractors, all pairs, top-1/5/10)")
    p.add_argument("--space", choices=SPACES,
                   help="where the recogniser meets protected faces: crop (the aligned canvas; default) or photo "
                        "(put back into the user's photo, saved as JPEG, re-detected and re-aligned by the "
                        "target's own detector; docs/photos.md). Re-scoring a finished run in photo space "
                        "reuses its protected photos")
    p.add_argument("--photo-jpeg-quality", type=int, metavar="Q",
                   help="JPEG quality of the photos the attacker scrapes in photo space (default 90)")
    p.add_argument("--split", help=f"a named split preset instead of the suite's ({', '.join(SPLITS)})")
    p.add_argument("--set", action="append", metavar="NAME.KEY=VALUE",
                   help="override one config value of a method or an adversary, e.g. --set "
                        "opom-class-center.iterations=100 or --set jpeg-75.quality=60 (repeatable; `bench list "
                        "methods --json` / `bench list adversaries --json` show each config)")
    p.add_argument("--no-wait", action="store_true",
                   help="if another run is using the run folder, stop at once (default: wait for it, then reuse "
                        "its finished tasks)")
    p.set_defaults(func=run)
