"""Throughput measured as ratios in one process, so that a shared, noisy machine still gives comparable numbers.

- per target: forward and forward+backward images per second through ``Target.embed`` (the harness path: framing
  resample, preprocessing, network, normalisation), and ``eval_ratio`` = that forward rate over the raw network
  forward on inputs prepared beforehand (the harness' overhead; 1.0 is none).
- per method: fit seconds per user and protect milliseconds per photo, and for methods that fit, ``fit_ratio`` =
  the time the fit's surrogate passes would take at the raw rates (every image passed through a surrogate during
  the fit is counted, with and without gradients) over the fit's actual time. 1.0 means the method spends all its
  time in the surrogates' forward and backward passes; less is overhead of its own.
"""

from __future__ import annotations

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


def median_seconds(fns: dict[str, Callable[[], Any]], device: torch.device | str, repeat: int = 3,
                   warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, timed in turns (a, b, a, b ...) so that load on a shared machine falls on
    all of them alike and their ratio holds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


@dataclass
class TargetRates:
    name: str
    differentiable: bool
    forward_ips: float  # images per second through Target.embed, no gradients
    forward_backward_ips: float | None  # with gradients back to the canvas pixels
    raw_forward_ips: float | None  # the network alone on prepared inputs
    eval_ratio: float | None  # forward_ips / raw_forward_ips

    def seconds_per_image(self, grad: bool) -> float:
        rate = self.forward_backward_ips if grad and self.forward_backward_ips else self.forward_ips
        return 1.0 / rate


def target_rates(target: Any, canvases: torch.Tensor, repeat: int = 3) -> TargetRates:
    n = len(canvases)

    def forward() -> None:
        with torch.no_grad():
            target.embed(canvases)

    timed: dict[str, Callable[[], Any]] = {"forward": forward}
    if target.differentiable:
        def forward_backward() -> None:
            x = canvases.clone().requires_grad_(True)
            target.embed(x).sum().backward()

        timed["forward_backward"] = forward_backward
        network = getattr(target, "network", None)
        if network is not None:
            with torch.no_grad():
                prepared = target.preprocess(target.framing.crop(canvases))

            def raw_forward() -> None:
                with torch.no_grad():
                    for i in range(0, n, target.config.batch_size):
                        network(prepared[i : i + target.config.batch_size])

            timed["raw_forward"] = raw_forward
    rate = {k: n / s for k, s in median_seconds(timed, canvases.device, repeat).items()}
    raw = rate.get("raw_forward")
    return TargetRates(target.name, bool(target.differentiable), rate["forward"], rate.get("forward_backward"), raw,
                       rate["forward"] / raw if raw else None)


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


def method_cost(method: Any, surrogates: list[Any], fit_photos: torch.Tensor, probes: torch.Tensor,
                rates: dict[str, TargetRates], seed: int = 0) -> MethodCost:
    device = fit_photos.device
    with counting_passes(surrogates) as fit_counter:
        _sync(device)
        t0 = time.perf_counter()
        protector = method.fit(fit_photos, surrogates, seed)
        _sync(device)
        fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    protector.protect(probes)
    _sync(device)
    protect_ms = 1000 * (time.perf_counter() - t0) / max(1, len(probes))
    ratio = None
    if method.kind == "universal" and fit_counter.grad:
        ratio = ideal_seconds(fit_counter, rates) / fit_s
    passes = {f"{k} (grad)": v for k, v in fit_counter.grad.items()}
    passes.update({f"{k} (no grad)": v for k, v in fit_counter.no_grad.items()})
    return MethodCost(method.name, method.kind, fit_s, protect_ms, ratio, passes)


__all__ = ["MethodCost", "PassCounter", "TargetRates", "counting_passes", "ideal_seconds", "median_seconds",
           "method_cost", "target_rates"]
