"""``bench run --dry-run``: the suite planned on file lists and priced on this machine (``bench.perf.estimate``),
printed as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.commands._progress import clock_time
from bench.commands._settings import device_and_threads
from bench.commands._ui import wants_json
from bench.core.progress import Reporter
from bench.data.datasets import DataError, resolve_data_root
from bench.registry import ConfigError, UnknownNameError
from bench.run.plugins import validate_names
from bench.run.prepare import check_run_request


def dry_run(suite, args, out: Path, console: Console, reporter: Reporter) -> int:
    """Plan the suite on file lists and price it from rates measured on this machine (``bench.perf.estimate``), after
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
        with reporter.live():
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
        return clock_time(seconds) if threads == 1 else f"{clock_time(seconds / threads)} to {clock_time(seconds)}"

    kinds = Table(title=f"{suite.name}: tasks and estimated time on {device} ({threads} thread(s))")
    for col in ("kind", "tasks", "CPU time" if on_cpu else "wall time", *(("wall time, idle machine",) if on_cpu else ())):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    for kind, cost in [*estimate.kinds.items(), ("all", KindCost(sum(c.tasks for c in estimate.kinds.values()),
                                                                 estimate.seconds))]:
        kinds.add_row(kind, str(cost.tasks), clock_time(cost.seconds), *((idle_wall(cost.seconds),) if on_cpu else ()))
    console.print(kinds)
    methods = Table(title="protect tasks per method")
    for col in ("method", "kind", "users", "fit s/user", "protect s/photo", f"{clock} time"):
        methods.add_column(col, justify="left" if col in ("method", "kind") else "right")
    for name, m in sorted(estimate.methods.items(), key=lambda kv: -kv[1]["seconds"]):
        methods.add_row(name, m["kind"], str(m["users"]), f"{m['fit_s_per_user']:.1f}",
                        f"{m['protect_s_per_photo']:.2f}", clock_time(m["seconds"]))
    console.print(methods)
    for name, reason in estimate.unavailable.items():
        console.print(f"[yellow]{name} unavailable[/yellow]: {reason}")
    for note in estimate.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"rates measured on this machine, cached in {estimate.cache} (--remeasure to measure again)"
                  + ("; CPU time of the process, all threads: the load of other work does not enter it" if on_cpu
                     else ""))
    return 0
