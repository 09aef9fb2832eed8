"""Throughput measured as ratios in one process, so that a shared, noisy machine still gives comparable numbers.

- per target: forward and forward+backward images per second through ``Target.embed`` (the harness path: framing
  resample, preprocessing, network, normalisation), and ``eval_ratio`` = that forward rate over the raw network
  forward on inputs prepared beforehand (the harness' overhead; 1.0 is none).
- per method: fit seconds per user and protect milliseconds per photo, and for methods that fit, ``fit_ratio`` =
  the time the fit's surrogate passes would take at the raw rates (every image passed through a surrogate during
  the fit is counted, with and without gradients) over the fit's actual time. 1.0 means the method spends all its
  time in the surrogates' forward and backward passes; less is overhead of its own.
- per run (a smoke-like suite, shortened, on the run's own data): ``recomputations`` (photos aligned and clean
  photos embedded more than once by the same model, counted by the harness: ``bench.core.work_log``), ``scaling_2x`` (the
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
    from bench.data.datasets import load_identity_folders, resolve_data_root
    from bench.data.decoding import FaceError
    from bench.data.faces import Aligner, canvases_to_tensor

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
    from bench.run.plugins import expand

    overrides = {m: dict(v) for m, v in suite.method_overrides.items()}
    for name in expand(suite.methods, METHODS):
        method = METHODS.create(name, **overrides.get(name, {}))
        if method.effort:
            overrides.setdefault(name, {})[method.effort] = min(effort, getattr(method.config, method.effort))
    return suite.with_overrides(method_overrides=overrides)


__all__ = ["MethodCost", "PassCounter", "TargetRates", "cost_clock", "counting_passes", "faces", "ideal_seconds",
           "median_seconds", "method_cost", "shortened", "target_rates", "time_calls", "timed"]
