"""Throughput measured as ratios in one process, so that a shared, noisy machine still gives comparable numbers.

- per target: forward and forward+backward images per second through ``Target.embed`` (the harness path: framing
  resample, preprocessing, network, normalisation), and ``eval_ratio`` = that forward rate over the raw network
  forward on inputs prepared beforehand (the harness' overhead; 1.0 is none).
- per method: fit seconds per user and protect milliseconds per photo, and for methods that fit, ``fit_ratio`` =
  the time the fit's surrogate passes would take at the raw rates (every image passed through a surrogate during
  the fit is counted, with and without gradients) over the fit's actual time. 1.0 means the method spends all its
  time in the surrogates' forward and backward passes; less is overhead of its own.
- per run (a smoke-like suite, shortened, on the run's own data): ``recomputations`` (photos aligned and clean
  photos embedded more than once by the same model, counted by the harness: ``bench.work``), ``scaling_2x`` (the
  suite's time for twice the users over its time for the users, gallery held fixed; ``tasks_scaling_2x`` the
  same for the tasks alone, without loading) and ``speedup_vs_naive`` (a naive per-image loop doing the same
  work: every photo detected and aligned where it is used, every image through every model alone, nothing
  cached, over the suite's time).

Every time is read on ``cost_clock``: on a CPU the CPU time of the process (all its threads), which other work
on a shared machine barely changes (wall seconds there can double from one hour to the next); on a GPU the wall
time. Things compared are also timed in turns (a, b, a, b ...).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def cost_clock(device: torch.device | str) -> Callable[[], float]:
    """The clock a cost is read on: on a CPU the CPU time of this process (all its threads), which the load of a
    shared machine does not inflate (with one thread it is the wall time of an idle machine); on a GPU the wall
    time (the host mostly waits for the device)."""
    return time.process_time if torch.device(device).type == "cpu" else time.perf_counter


def median_seconds(fns: dict[str, Callable[[], Any]], device: torch.device | str, repeat: int = 3,
                   warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function on the cost clock, timed in turns (a, b, a, b ...) so that what load on a
    shared machine still does to it falls on all of them alike and their ratio holds."""
    clock = cost_clock(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            _sync(device)
            times[name].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


@dataclass
class TargetRates:
    name: str
    differentiable: bool
    forward_ips: float  # images per second through Target.embed, no gradients
    forward_backward_ips: float | None  # with gradients back to the canvas pixels
    raw_forward_ips: float | None  # the network alone on prepared inputs
    eval_ratio: float | None  # forward_ips / raw_forward_ips
    # forward+backward rate on 4 x the batch over the rate on the batch: what batching several users' masks in
    # one pass would gain on this device
    batch_gain: float | None = None
    # the forward rate on 4 x the batch over the rate on the batch: what an evaluation gains by embedding every
    # user's photos in one pass instead of user by user
    forward_batch_gain: float | None = None
    # the network's forward+backward rate with its weights in channels-last memory format over the default one
    channels_last_gain: float | None = None
    # the forward rate in inference mode (how the harness embeds clean photos) over plain no-grad mode
    inference_mode_gain: float | None = None

    def seconds_per_image(self, grad: bool) -> float:
        rate = self.forward_backward_ips if grad and self.forward_backward_ips else self.forward_ips
        return 1.0 / rate


def target_rates(target: Any, canvases: torch.Tensor, repeat: int = 3, extras: bool = False) -> TargetRates:
    """Rates on ``canvases`` (timed in turns); ``extras`` adds ``batch_gain`` and ``channels_last_gain``."""
    n = len(canvases)

    def forward() -> None:
        with torch.inference_mode():
            target.embed(canvases)

    def forward_backward(batch: torch.Tensor = canvases) -> None:
        x = batch.clone().requires_grad_(True)
        target.embed(x).sum().backward()

    timed_fns: dict[str, Callable[[], Any]] = {"forward": forward}
    images = {"forward": n}
    if target.differentiable:
        timed_fns["forward_backward"] = forward_backward
        images["forward_backward"] = n
        network = getattr(target, "network", None)
        if network is not None:
            with torch.no_grad():
                prepared = target.preprocess(target.framing.crop(canvases))

            def raw_forward() -> None:
                with torch.inference_mode():
                    for i in range(0, n, target.config.batch_size):
                        network(prepared[i : i + target.config.batch_size])

            timed_fns["raw_forward"] = raw_forward
            images["raw_forward"] = n
            if extras:
                def no_grad_forward() -> None:
                    with torch.no_grad():
                        target.embed(canvases)

                timed_fns["forward_no_grad"] = no_grad_forward
                images["forward_no_grad"] = n
                large = canvases.repeat(4, 1, 1, 1)
                timed_fns["forward_backward_4x"] = lambda: forward_backward(large)
                images["forward_backward_4x"] = 4 * n

                def forward_4x() -> None:
                    with torch.inference_mode():
                        target.embed(large)

                timed_fns["forward_4x"] = forward_4x
                images["forward_4x"] = 4 * n
                timed_fns.update(_memory_format_pair(network, prepared))
                images.update({"raw_fb_default": n, "raw_fb_channels_last": n})
    seconds = median_seconds(timed_fns, canvases.device, repeat)
    rate = {k: images[k] / s for k, s in seconds.items()}
    raw = rate.get("raw_forward")
    return TargetRates(
        target.name, bool(target.differentiable), rate["forward"], rate.get("forward_backward"), raw,
        rate["forward"] / raw if raw else None,
        rate["forward_backward_4x"] / rate["forward_backward"] if "forward_backward_4x" in rate else None,
        rate["forward_4x"] / rate["forward"] if "forward_4x" in rate else None,
        rate["raw_fb_channels_last"] / rate["raw_fb_default"] if "raw_fb_default" in rate else None,
        rate["forward"] / rate["forward_no_grad"] if "forward_no_grad" in rate else None)


def _memory_format_pair(network: torch.nn.Module, prepared: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """Forward+backward of the network on prepared inputs, as it is and as a channels-last copy."""
    twin = copy.deepcopy(network).to(memory_format=torch.channels_last)

    def run(net: torch.nn.Module, x: torch.Tensor) -> None:
        x = x.clone().requires_grad_(True)
        net(x).sum().backward()

    last = prepared.contiguous(memory_format=torch.channels_last)
    return {"raw_fb_default": lambda: run(network, prepared), "raw_fb_channels_last": lambda: run(twin, last)}


def faces(data_root: str | None, count: int, device: str, aligner: Any = None) -> torch.Tensor:
    """``count`` aligned canvases of the first identity (by name) under the data root with that many usable
    photos, on ``device``."""
    from bench.data import load_identity_folders, resolve_data_root
    from bench.faces import Aligner, FaceError, canvases_to_tensor

    root, _ = resolve_data_root(data_root)
    ds = load_identity_folders(root, "lfw", min_photos=count)
    aligner = aligner or Aligner(device=device)
    for name in sorted(ds.identities):
        canvases = []
        for path in ds.identities[name]:
            try:
                canvases.append(aligner.align(path).canvas)
            except FaceError:
                continue
            if len(canvases) == count:
                return canvases_to_tensor(canvases).to(device)
    raise ValueError(f"no identity under {root} has {count} photos with a usable face")


@dataclass
class PassCounter:
    """Images each surrogate embedded, with and without gradients."""

    grad: dict[str, int] = field(default_factory=dict)
    no_grad: dict[str, int] = field(default_factory=dict)


@contextmanager
def counting_passes(surrogates: list[Any]) -> Iterator[PassCounter]:
    """Count the images every surrogate embeds while the block runs (the instance's ``embed`` is wrapped and
    restored afterwards)."""
    counter = PassCounter()
    for s in surrogates:
        original = s.embed

        def counted(canvases: torch.Tensor, _original=original, _name=s.name) -> torch.Tensor:
            book = counter.grad if torch.is_grad_enabled() and canvases.requires_grad else counter.no_grad
            book[_name] = book.get(_name, 0) + len(canvases)
            return _original(canvases)

        s.embed = counted
    try:
        yield counter
    finally:
        for s in surrogates:
            del s.embed  # the class' method shows through again


def ideal_seconds(counter: PassCounter, rates: dict[str, TargetRates]) -> float:
    return (sum(n * rates[name].seconds_per_image(True) for name, n in counter.grad.items())
            + sum(n * rates[name].seconds_per_image(False) for name, n in counter.no_grad.items()))


@dataclass
class MethodCost:
    name: str
    kind: str
    fit_s: float
    protect_ms_per_photo: float
    fit_ratio: float | None  # ideal surrogate time / actual fit time (universal methods)
    passes: dict[str, int]


def timed(fn: Callable[[], Any], device: torch.device | str,
          clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    """(seconds on ``clock``, result) of one call, the device's queue drained before and after."""
    _sync(device)
    t0 = clock()
    result = fn()
    _sync(device)
    return clock() - t0, result


def time_calls(method: Any, surrogates: list[Any], fit_photos: torch.Tensor, probes: torch.Tensor,
               seed: int = 0, clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """Seconds of one fit on ``fit_photos`` and of protecting ``probes`` with the fitted protector."""
    fit_s, protector = timed(lambda: method.fit(fit_photos, surrogates, seed), fit_photos.device, clock)
    protect_s, _ = timed(lambda: protector.protect(probes), probes.device, clock)
    return fit_s, protect_s


def method_cost(method: Any, surrogates: list[Any], fit_photos: torch.Tensor, probes: torch.Tensor,
                rates: dict[str, TargetRates], seed: int = 0) -> MethodCost:
    device = fit_photos.device
    with counting_passes(surrogates) as fit_counter:
        fit_s, protector = timed(lambda: method.fit(fit_photos, surrogates, seed), device, cost_clock(device))
    protect_s, _ = timed(lambda: protector.protect(probes), device, cost_clock(device))
    protect_ms = 1000 * protect_s / max(1, len(probes))
    ratio = None
    if method.kind == "universal" and fit_counter.grad:
        ratio = ideal_seconds(fit_counter, rates) / fit_s
    passes = {f"{k} (grad)": v for k, v in fit_counter.grad.items()}
    passes.update({f"{k} (no grad)": v for k, v in fit_counter.no_grad.items()})
    return MethodCost(method.name, method.kind, fit_s, protect_ms, ratio, passes)


def shortened(suite: Any, effort: int) -> Any:
    """The suite with every method's effort knob (``Method.effort``) capped at ``effort``: a ratio of times does
    not depend on the step count, and the run takes minutes."""
    from bench.registry import METHODS
    from bench.resources import expand

    overrides = {m: dict(v) for m, v in suite.method_overrides.items()}
    for name in expand(suite.methods, METHODS):
        method = METHODS.create(name, **overrides.get(name, {}))
        if method.effort:
            overrides.setdefault(name, {})[method.effort] = min(effort, getattr(method.config, method.effort))
    return suite.with_overrides(method_overrides=overrides)


@dataclass
class SuiteTiming:
    seconds: float  # the whole run: data, loading, tasks
    task_seconds: float  # the tasks alone, as the store recorded them
    work: dict[str, Any]  # bench.work summary


def time_suite(suite: Any, run_dir: Any, data_root: str | None, device: str, threads: int) -> SuiteTiming:
    from bench.estimate import measured_kinds
    from bench.runner import Runner

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
    from bench.canvas import from_uint8, to_uint8
    from bench.context import RunContext
    from bench.data import resolve_data_root
    from bench.faces import Aligner
    from bench.identity_bank import BankBuilder
    from bench.metrics import identity_templates, user_outcome
    from bench.prepare import split_files
    from bench.progress import Reporter
    from bench.registry import TARGETS
    from bench.resources import create_adversaries, create_methods, expand, load_targets
    from bench.tasks import quality_rows

    if "gallery" in suite.scenarios:
        raise ValueError("the naive loop times the probe scenario only")
    torch.set_num_threads(threads)
    clock = cost_clock(device)
    t0 = clock()
    root, _ = resolve_data_root(data_root)
    aligner = Aligner(device=device)
    _, users, splits = split_files(suite, root, lambda item, reason: None)

    def canvas(path: Any) -> torch.Tensor:
        return from_uint8(torch.from_numpy(aligner.align(path, cached=False).canvas).permute(2, 0, 1)[None]).to(device)

    reporter = Reporter()
    unavailable: dict[str, str] = {}
    targets = load_targets(expand(suite.targets, TARGETS), device, unavailable, reporter)
    extra = load_targets([n for n in suite.surrogates if n not in targets], device, unavailable, reporter)
    surrogates = [targets.get(n) or extra.get(n) for n in suite.surrogates]
    bank = BankBuilder(root, suite.dataset, set(users), _Uncached(aligner), None)
    context = RunContext(device=device, seed=suite.split.seed, data_root=root, bank_provider=bank.bank)
    methods, _ = create_methods(suite, context, reporter)
    adversaries, _ = create_adversaries(suite, context, reporter)
    scratch = SimpleNamespace(unavailable_metrics={}, message=lambda text: None)
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
                quality_rows(scratch, shown, clean)
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

    from bench.data import resolve_data_root
    from bench.faces import Aligner
    from bench.prepare import prepare_data
    from bench.progress import Reporter

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


__all__ = ["MethodCost", "PassCounter", "TargetRates", "cost_clock", "counting_passes", "faces", "ideal_seconds",
           "median_seconds", "method_cost", "naive_seconds", "shortened", "suite_measures", "target_rates", "time_calls",
           "time_suite", "timed"]
