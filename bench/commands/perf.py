"""``bench perf``: throughput of targets, methods and a smoke-like run, as ratios measured in one process
(see bench/perf/throughput/throughput.py).

Methods run shortened (their effort knob, ``Method.effort``, capped at ``--effort``; ``--set`` changes any
setting): a ratio and a per-step cost do not depend on the step count, a fit time per user does, so each
method's row names the setting it ran at. The run-level measures (recomputations, scaling_2x,
speedup_vs_naive) run the smoke suite shortened the same way, in fresh run folders under a temporary folder.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict

import torch
from rich.table import Table

from bench.commands._settings import method_overrides
from bench.commands._ui import add_format_option, wants_json, wide_console
from bench.core.devices import default_threads, resolve_device
from bench.measures.registry import SIGNIFICANT
from bench.models.weights import WeightError, ensure
from bench.perf.run_measures import suite_measures
from bench.perf.throughput import faces, method_cost, shortened, target_rates
from bench.registry import METHODS, TARGETS, ConfigError, UnknownNameError
from bench.report.formatting import number
from bench.run.suites import get_suite


def _load(names: list[str], device: str) -> list:
    targets = []
    for name in names:
        target = TARGETS.create(name, device=device)
        for spec in type(target).weights:
            ensure(spec)
        target.load()
        targets.append(target)
    return targets


def _short_settings(names: list[str], effort: int, settings: list[str]) -> dict:
    base = {}
    for name in names:
        method = METHODS.create(name)
        if method.effort:
            base[name] = {method.effort: min(effort, getattr(method.config, method.effort))}
    return method_overrides(base, settings)


def ratios(result: dict) -> dict:
    """The headline ratios: the worst fit_ratio and eval_ratio, and the run-level measures."""
    fit = [m["fit_ratio"] for m in result["methods"] if m["fit_ratio"] is not None]
    evals = [t["eval_ratio"] for t in result["targets"] if t["eval_ratio"] is not None]
    out = {"fit_ratio": min(fit) if fit else None, "eval_ratio": min(evals) if evals else None}
    suite = result.get("suite") or {}
    for key in ("recomputations", "scaling_2x", "tasks_scaling_2x", "speedup_vs_naive"):
        out[key] = suite.get(key)
    return out


def measure(args, device: str) -> dict:
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    photos = faces(args.data_root, args.batch * 2, device)
    fit_photos, probes = photos[: args.batch], photos[args.batch:]
    targets = _load(args.targets.split(","), device)
    surrogates = [t for t in targets if t.name in args.surrogates.split(",")]
    rates = {t.name: target_rates(t, fit_photos, args.repeat, extras=True) for t in targets}
    names = args.methods.split(",")
    overrides = _short_settings(names, args.effort, args.set or [])
    costs = []
    for name in names:
        method = METHODS.create(name, **overrides.get(name, {}))
        cost = method_cost(method, surrogates, fit_photos, probes, rates)
        costs.append({**asdict(cost), "setting": overrides.get(name, {})})
    result = {"device": device, "threads": threads, "batch": args.batch,
              "targets": [asdict(r) for r in rates.values()], "methods": costs}
    if args.suite_users:
        suite = shortened(get_suite("smoke").with_overrides(gallery_identities=args.suite_gallery), args.effort)
        with tempfile.TemporaryDirectory(prefix="bench-perf-") as workdir:
            result["suite"] = {"name": suite.name, "effort": args.effort, "gallery_identities": args.suite_gallery,
                               **suite_measures(suite, workdir, args.data_root, device, threads, args.suite_users,
                                               max(1, args.repeat - 1))}
    result["ratios"] = ratios(result)
    return result


def _table(result: dict) -> list[Table]:
    t = Table(title=f"targets on {result['device']} ({result['threads']} threads, batch {result['batch']})")
    for col in ("target", "forward img/s", "fwd+bwd img/s", "raw forward img/s", "eval_ratio", "fwd+bwd x4 gain",
                "forward x4 gain", "channels-last gain", "inference-mode gain"):
        t.add_column(col, justify="right" if col != "target" else "left")
    for r in result["targets"]:
        t.add_row(r["name"], f"{r['forward_ips']:.1f}", number(r["forward_backward_ips"], ".1f"),
                  number(r["raw_forward_ips"], ".1f"), number(r["eval_ratio"], ".2f"), number(r["batch_gain"], ".2f"),
                  number(r["forward_batch_gain"], ".2f"),
                  number(r["channels_last_gain"], ".2f"), number(r["inference_mode_gain"], ".2f"))
    m = Table(title="methods (shortened settings as named)")
    for col in ("method", "setting", "fit s/user", "ms/photo", "fit_ratio"):
        m.add_column(col, justify="right" if col not in ("method", "setting") else "left")
    for r in result["methods"]:
        m.add_row(r["name"], ", ".join(f"{k}={v}" for k, v in r["setting"].items()) or "defaults",
                  number(r["fit_s"], SIGNIFICANT), number(r["protect_ms_per_photo"], SIGNIFICANT),
                  number(r["fit_ratio"], ".2f"))
    tables = [t, m]
    suite = result.get("suite")
    if suite:
        s = Table(title=f"run: {suite['name']} suite, effort <= {suite['effort']}, {suite['users']} vs "
                        f"{2 * suite['users']} users, {suite['gallery_identities']}-identity gallery")
        for col in ("seconds", "seconds 2x users", "naive seconds"):
            s.add_column(col, justify="right")
        s.add_row(f"{suite['seconds']:.1f}", f"{suite['seconds_2x']:.1f}", f"{suite['naive_seconds']:.1f}")
        tables.append(s)
    r = Table(title="ratios")
    for key in result["ratios"]:
        r.add_column(key, justify="right")
    r.add_row(*(number(v, ".2f" if isinstance(v, float) else "d") for v in result["ratios"].values()))
    tables.append(r)
    return tables


def run(args) -> int:
    console = wide_console()
    try:
        if args.device == "auto" and torch.cuda.is_available():
            devices = ["cpu", "cuda"]  # side by side when both exist
        else:
            devices = [resolve_device(args.device)]
        results = [measure(args, device) for device in devices]
    except (ValueError, UnknownNameError, ConfigError, WeightError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if wants_json(args):
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return 0
    for result in results:
        for table in _table(result):
            console.print(table)
    return 0


# What `bench perf` times unless told otherwise (scripts/gpu-check.sh runs it so; `bench bundle` carries them).
DEFAULT_TARGETS = "sface,dlib-resnet,faceres,mobileface"


def add_parser(sub) -> None:
    p = sub.add_parser("perf", help="measure target, method and run throughput as ratios (bench/perf/throughput/throughput.py)")
    p.add_argument("--targets", default=DEFAULT_TARGETS,
                   help=f"comma-separated targets to time (default {DEFAULT_TARGETS})")
    p.add_argument("--surrogates", default="sface,dlib-resnet", help="targets the methods fit against")
    p.add_argument("--methods", default="chameleon,uap,pgd",
                   help="comma-separated methods to time, shortened to --effort (default chameleon,uap,pgd)")
    p.add_argument("--set", action="append", metavar="METHOD.KEY=VALUE", help="change a method's setting")
    p.add_argument("--effort", type=int, default=4,
                   help="cap on each method's steps/epochs/iterations (its effort knob) for the timings")
    p.add_argument("--batch", type=int, default=4, help="fit photos (and probe photos) per method: Chameleon's batch")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per rate (the median is kept)")
    p.add_argument("--suite-users", type=int, default=2,
                   help="users of the smoke-like run for recomputations, scaling_2x and speedup_vs_naive "
                        "(twice as many for scaling_2x); 0 skips the run-level measures")
    p.add_argument("--suite-gallery", type=int, default=8, help="gallery identities of that run (users included)")
    p.add_argument("--data-root", help="faces to time on (default: as bench run)")
    p.add_argument("--device", default="auto", help="auto (CPU, and CUDA beside it when present), cpu, cuda")
    p.add_argument("--threads", type=int, help="torch threads (default: the cores this process may use)")
    add_format_option(p, what=": json prints the measurements")
    p.set_defaults(func=run)
