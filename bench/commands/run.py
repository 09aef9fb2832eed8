"""``bench run --suite NAME [--out DIR]``: run a suite (resuming from the run store), print and write results."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from bench.commands._dry_run import dry_run
from bench.commands._progress import console_reporter
from bench.commands._settings import device_and_threads, method_overrides
from bench.commands._ui import add_format_option, print_board, wants_json, wide_console
from bench.core.devices import resolve_device
from bench.core.validation import UsageError
from bench.data.datasets import DataError
from bench.measures.psr import PROTOCOLS
from bench.perf.estimate import cached_prices
from bench.registry import ADVERSARIES, ConfigError, UnknownNameError
from bench.report import html as report
from bench.report import leaderboard, repeats
from bench.run.executors import LocalExecutor
from bench.run.folder_lock import RunFolderBusy
from bench.run.prepare import check_run_request
from bench.run.runner import Runner
from bench.run.suites import SPACES, SPLITS, Suite, get_suite


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
        return dry_run(suite, args, out, shown, console_reporter(shown))
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
    reporter = console_reporter(console)
    t0 = time.perf_counter()
    started = time.time()
    try:
        device, threads = device_and_threads(args)
        executor = make_executor(args.executor, args.address, suite)
        runner = Runner(suite, out, data_root=args.data_root, device=device, threads=threads, reporter=reporter,
                        executor=executor, wait=not args.no_wait, pricer=cached_prices)
        with reporter.live():
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


def make_executor(name: str, address: str | None, suite):
    if name == "local":
        if address:
            raise ValueError("--address is for --executor ray")
        return LocalExecutor()
    if name == "ray":
        from bench.run.ray_executor import RayExecutor

        return RayExecutor(suite, address=address)
    raise ValueError(f"unknown executor {name!r}: local or ray")


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
    p.add_argument("--methods", help="comma-separated methods instead of the suite's; '*' for every registered one, "
                                     "-NAME to leave one out (--methods '*,-square,-tip-im')")
    p.add_argument("--targets", help="comma-separated targets instead of the suite's (also '*' and -NAME)")
    p.add_argument("--adversaries", help="comma-separated adversaries instead of the suite's (also '*' and -NAME)")
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
