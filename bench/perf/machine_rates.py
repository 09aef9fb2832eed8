"""The rates a dry run prices a plan with, measured on this machine (``RateMeter``, which ``bench.perf.estimate``'s
``Estimator`` builds on): a target's forward rate, a method's fit and protect at two efforts, the quality metrics,
an adversary's transform, an adaptive adversary's training step and, in photo space, posting and detecting a photo.

Costs are read on ``bench.perf.throughput.cost_clock``: on a CPU the CPU time of the process (all its threads), which
the load of a shared machine does not inflate (with one thread, the wall time of an idle machine; with more, the
idle wall time lies between CPU time / threads and CPU time); on a GPU the wall time.

Rates are cached in ``$BENCH_HOME/perf/rates.json`` under a key of the machine (host, processor, torch, device,
threads), each under a key of what was measured (name, config, code version, surrogates, batch; ``remeasure``: each
once again, as GPU rates carry the load of their moment). A training adversary's step depends on the shape of what
it trains on, not on the photos, so it is timed on the dry run's own photos.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.core.progress import Reporter
from bench.data.faces import Aligner
from bench.perf.rates import RateCache, time_method
from bench.perf.throughput import cost_clock, faces, timed
from bench.registry import TARGETS
from bench.run.context import RunContext
from bench.run.photo_space import AttackerView, photo_costs
from bench.run.plugins import load_targets
from bench.run.provenance import code_version, content_key
from bench.run.suites import Suite


class RateMeter:
    """Measures what the rate cache lacks (with progress) for one suite, data root, device and thread count."""

    def __init__(self, suite: Suite, root: Path, device: str, threads: int, reporter: Reporter,
                 batch: int = 4, cache: RateCache | None = None):
        self.suite, self.root, self.device, self.threads = suite, Path(root), device, threads
        self.reporter, self.batch = reporter, batch
        self.cache = cache or RateCache(device, threads)
        self.unavailable: dict[str, str] = {}
        self._targets: dict[str, Any] = {}
        self._photos: tuple[torch.Tensor, torch.Tensor] | None = None
        self.aligner = Aligner(device=device)

    def _seconds(self, fn, inference: bool = False) -> float:
        """Seconds of one call after a warm-up call, on the cost clock (CPU time on a CPU)."""
        def call():
            if inference:
                with torch.inference_mode():
                    return fn()
            return fn()

        call()
        return timed(call, self.device, cost_clock(self.device))[0]

    def photos(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch`` fit photos and ``batch`` other photos of one identity of the run's data."""
        if self._photos is None:
            both = faces(str(self.root), 2 * self.batch, self.device, self.aligner)
            self._photos = both[: self.batch], both[self.batch:]
        return self._photos

    def target(self, name: str) -> Any:
        if name not in self._targets:
            self._targets.update(load_targets([name], self.device, self.unavailable, self.reporter))
        return self._targets.get(name)

    def target_rate(self, name: str) -> float | None:
        """Images per second through the target's ``embed`` without gradients (None: unavailable)."""
        cls = TARGETS.entry(name).cls
        key = f"target/{name}/{code_version(cls)}"
        cached = self.cache.get(key)
        if cached is None:
            target = self.target(name)
            if target is None:
                return None
            self.reporter.message(f"measuring {name}'s forward rate on {self.device}")
            photos = torch.cat(self.photos())
            cached = {"forward_ips": len(photos) / self._seconds(lambda: target.embed(photos), inference=True)}
            self.cache.put(key, cached)
        return cached["forward_ips"]

    def method_cost(self, name: str, method: Any, surrogates: list[str], context: RunContext) -> dict[str, Any]:
        from bench.registry import METHODS

        overrides = dict(self.suite.method_overrides.get(name, {}))
        key = "method/" + name + "/" + content_key(asdict(method.config), code_version(method), surrogates, self.batch)
        cached = self.cache.get(key)
        if cached is None:
            team = [self.target(s) for s in surrogates]
            if any(t is None for t in team):
                raise ValueError(f"surrogates {surrogates}: some are unavailable ({self.unavailable})")
            self.reporter.message(f"timing {name} on {self.device} ({self.batch} photos, {method.effort or 'as set'} "
                                  "1 and 3)")

            def factory(effort: dict[str, int]) -> Any:
                return METHODS.create(name, **{**overrides, **effort}).bind(context, 0)

            fit_photos, probes = self.photos()
            cached = time_method(factory, team, fit_photos, probes, method.effort)
            self.cache.put(key, cached)
        return cached

    def quality_seconds_per_photo(self) -> float:
        from bench.measures.registry import METRICS
        from bench.run.tasks.protection import quality_rows
        from bench.run.workspace import UnavailableMetrics

        key = "quality/" + content_key(sorted(m.row for m in METRICS.quality()), self.batch)
        cached = self.cache.get(key)
        if cached is None:
            clean = self.photos()[0]
            shown = (clean + 0.01 * torch.randn_like(clean)).clamp(0, 1)
            unavailable = UnavailableMetrics(report=lambda text: None)
            seconds = self._seconds(lambda: quality_rows(unavailable, shown, clean))
            cached = {"seconds_per_photo": seconds / len(clean)}
            self.cache.put(key, cached)
        return cached["seconds_per_photo"]

    def photo_seconds(self, detector: str) -> dict[str, float]:
        """Photo space: seconds per photo to post it, to measure its quality and for ``detector`` to find its
        face (``bench.run.photo_space.photo_costs`` on real photos of the data root)."""
        key = f"photo/{detector}/{self.suite.photo_jpeg_quality}/" + code_version(AttackerView)
        cached = self.cache.get(key)
        if cached is None:
            files = sorted(self.root.rglob("*.jpg"))[: 2 * self.batch]
            costs = [photo_costs(files, detector, self.suite.photo_jpeg_quality, cost_clock(self.device), self.device)
                     for _ in range(2)]  # the first call loads the detector
            cached = costs[-1]
            self.cache.put(key, cached)
        return cached

    def training(self, name: str, adversary: Any, target: str) -> dict[str, float] | None:
        """An adaptive adversary's training on this machine: seconds per step (three steps on ``batch`` photos
        after a warm-up, ``Adversary.training_step``) and the steps its configuration takes (None: it trains
        nothing here, e.g. a black-box target it cannot fine-tune)."""
        per_target = adversary.trains_per_target
        key = f"training/{name}/" + content_key(asdict(adversary.config), code_version(adversary),
                                                 target if per_target else None, self.batch)
        cached = self.cache.get(key)
        if cached is None:
            model = self.target(target) if per_target else None
            made = adversary.training_step(model, torch.cat(self.photos())) if model is not None or not per_target \
                else None
            if made is None:
                return None
            step, steps = made
            self.reporter.message(f"timing {name}'s training step on {self.device}" + (f" ({target})" if per_target
                                                                                       else ""))
            cached = {"seconds_per_step": self._seconds(lambda: [step() for _ in range(3)]) / 3, "steps": steps}
            self.cache.put(key, cached)
        return cached

    def adversary_seconds_per_photo(self, name: str, adversary: Any) -> float:
        key = f"adversary/{name}/" + content_key(asdict(adversary.config), code_version(adversary))
        cached = self.cache.get(key)
        if cached is None:
            photos = torch.cat(self.photos())
            cached = {"seconds_per_photo": self._seconds(lambda: adversary.apply(photos)) / len(photos)}
            self.cache.put(key, cached)
        return cached["seconds_per_photo"]


__all__ = ["RateMeter"]
