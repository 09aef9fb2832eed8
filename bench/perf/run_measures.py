"""``bench perf``'s run-level measures: a suite timed as a run (``recomputations``, ``scaling_2x`` with twice
the users) and against the naive way (``speedup_vs_naive``: every photo aligned where used, every image through
every model alone). Kept apart from ``bench.perf.throughput`` (target and method rates), which
``bench.perf.machine_rates`` builds on: this module reads what a finished run recorded through ``bench.perf.estimate``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from bench.perf.estimate import measured_kinds
from bench.perf.throughput import cost_clock, timed


@dataclass
class SuiteTiming:
    seconds: float  # the whole run: data, loading, tasks
    task_seconds: float  # the tasks alone, as the store recorded them
    work: dict[str, Any]  # bench.core.work_log summary


def time_suite(suite: Any, run_dir: Any, data_root: str | None, device: str, threads: int) -> SuiteTiming:
    from bench.run.runner import Runner

    runner = Runner(suite, run_dir, data_root=data_root, device=device, threads=threads)
    seconds, _ = timed(runner.run, device, cost_clock(device))
    task_seconds = sum(k.seconds for k in measured_kinds(runner.store, cpu=torch.device(device).type == "cpu").values())
    work = runner.store.get_meta("work", {})
    runner.store.close()
    return SuiteTiming(seconds, float(task_seconds or 0.0), work)


def naive_seconds(suite: Any, data_root: str | None, device: str, threads: int) -> float:
    """The suite's work done the naive way, timed: every photo is detected and aligned where it is used, every
    image goes through every model on its own, nothing is cached or batched. Per method and user: fit on the
    user's fit photos, protect each probe alone, its quality; per method, adversary and target: embed every
    gallery photo and every seen probe one at a time and rank; the clean baseline and the key holder's view
    likewise. Probe scenario only (the perf suite's)."""
    from bench.core.progress import Reporter
    from bench.data.canvas import from_uint8, to_uint8
    from bench.data.faces import Aligner
    from bench.measures.psr import identity_templates, user_outcome
    from bench.registry import TARGETS
    from bench.run.assembly import bind_plugins, locate_data, run_context
    from bench.run.plugins import expand, load_targets
    from bench.run.prepare import split_files
    from bench.run.tasks.protection import quality_rows
    from bench.run.workspace import UnavailableMetrics

    if "gallery" in suite.scenarios:
        raise ValueError("the naive loop times the probe scenario only")
    torch.set_num_threads(threads)
    clock = cost_clock(device)
    t0 = clock()
    source = locate_data(data_root, suite.dataset)
    aligner = Aligner(device=device)
    _, users, splits = split_files(suite, source.dataset, lambda item, reason: None)

    def canvas(path: Any) -> torch.Tensor:
        return from_uint8(torch.from_numpy(aligner.align(path, cached=False).canvas).permute(2, 0, 1)[None]).to(device)

    reporter = Reporter()
    unavailable: dict[str, str] = {}
    targets = load_targets(expand(suite.targets, TARGETS), device, unavailable, reporter)
    extra = load_targets([n for n in suite.surrogates if n not in targets], device, unavailable, reporter)
    surrogates = [targets.get(n) or extra.get(n) for n in suite.surrogates]
    bound = bind_plugins(suite, run_context(source, users, _Uncached(aligner), device, suite.split.seed), reporter)
    context, methods, adversaries = bound.context, bound.methods, bound.adversaries
    unavailable = UnavailableMetrics(report=lambda text: None)
    gallery = [(p, ident) for ident, sp in sorted(splits.items()) for p in sp.gallery]

    def rank(target: Any, seen: dict[str, list[torch.Tensor]]) -> None:
        with torch.no_grad():
            emb = torch.cat([target.embed(canvas(p)) for p, _ in gallery])
            templates, names = identity_templates(emb, [ident for _, ident in gallery])
            for user, photos in seen.items():
                user_outcome(user, torch.cat([target.embed(x) for x in photos]), templates, names)

    for target in targets.values():  # the clean baseline
        rank(target, {u: [canvas(p) for p in splits[u].probe] for u in users})
    for method in methods.values():
        protected: dict[str, list[torch.Tensor]] = {}
        keys = {}
        for user in users:
            bound = method.bind(context, suite.seeds[0])
            fit = torch.cat([canvas(p) for p in splits[user].fit])
            protector = bound.fit(fit, surrogates, suite.seeds[0])
            protected[user] = []
            for path in splits[user].probe:
                clean = canvas(path)
                shown = from_uint8(to_uint8(protector.protect(clean).detach()))
                quality_rows(unavailable, shown, clean)
                protected[user].append(shown)
            keys[user] = protector
        for adversary in adversaries.values():
            for target in targets.values():
                rank(target, {u: [adversary.apply(x) for x in photos] for u, photos in protected.items()})
        if method.holds_key:
            for target in targets.values():
                rank(target, {u: [keys[u].deobfuscate(x) for x in photos] for u, photos in protected.items()})
    return clock() - t0


class _Uncached:
    """An aligner that detects every time (the naive loop's identity bank)."""

    def __init__(self, aligner: Any):
        self.aligner = aligner

    def align(self, path: Any) -> Any:
        return self.aligner.align(path, cached=False)


def suite_measures(suite: Any, workdir: Any, data_root: str | None, device: str, threads: int,
                   users: int, repeat: int = 2) -> dict[str, Any]:
    """recomputations, scaling_2x and speedup_vs_naive on ``suite`` (shortened by the caller) with ``users`` and
    twice as many users (gallery identities fixed). Each run is a fresh run folder under ``workdir``; after one
    untimed run (imports, caches), the three are timed in turns ``repeat`` times and the medians kept, so that
    the load of a shared machine falls on all three alike."""
    from pathlib import Path

    from bench.core.progress import Reporter
    from bench.data.datasets import resolve_data_root
    from bench.data.faces import Aligner
    from bench.run.prepare import prepare_data

    one, two = suite.with_overrides(users=users), suite.with_overrides(users=2 * users)
    root, _ = resolve_data_root(data_root)
    prepare_data(two, root, Aligner(device=device), lambda item, reason: None, Reporter())  # fill the cache
    time_suite(one, Path(workdir) / "warm-up", str(root), device, threads)
    firsts, seconds, naives = [], [], []
    for r in range(repeat):
        firsts.append(time_suite(one, Path(workdir) / f"users-1x-{r}", str(root), device, threads))
        seconds.append(time_suite(two, Path(workdir) / f"users-2x-{r}", str(root), device, threads))
        naives.append(naive_seconds(one, str(root), device, threads))
    first = statistics.median(t.seconds for t in firsts)
    second = statistics.median(t.seconds for t in seconds)
    first_tasks = statistics.median(t.task_seconds for t in firsts)
    second_tasks = statistics.median(t.task_seconds for t in seconds)
    naive = statistics.median(naives)
    return {
        "users": users, "repeat": repeat, "seconds": first, "seconds_2x": second, "scaling_2x": second / first,
        "tasks_scaling_2x": second_tasks / first_tasks if first_tasks else None,
        "naive_seconds": naive, "speedup_vs_naive": naive / first,
        "recomputations": sum(t.work.get("recomputations", 0) for t in (*firsts, *seconds)),
        "work": firsts[0].work, "work_2x": seconds[0].work,
    }


__all__ = ["SuiteTiming", "naive_seconds", "suite_measures", "time_suite"]
