"""Rates measured on this machine for the dry run: the cache they are kept in (``$BENCH_HOME/perf/rates.json``,
one entry per machine, device and thread count) and a method's fit and protect seconds as a + b x effort."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.core.paths import bench_home
from bench.perf.throughput import cost_clock, time_calls

# Bumped when what a cached rate means changes (2: CPU time on a CPU).
RATES_FORMAT = 2


def machine_key(device: str, threads: int) -> str:
    parts = (RATES_FORMAT, platform.node(), platform.processor() or platform.machine(), torch.__version__, device,
             threads)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


class RateMissing(LookupError):
    """A rate a read-only cache lacks: nothing is measured (a run's ETA prices its tasks only from what a dry run
    measured)."""


class RateCache:
    """Measured rates of one machine, device and thread count, kept as JSON in ``$BENCH_HOME/perf``; with
    ``remeasure``, a stored rate is read back only once this process has measured it again; ``read_only`` (a run's
    ETA, which measures nothing): a rate it lacks is taken from the last one measured for the same plug-in under an
    earlier code version or other settings (recorded in ``stand_ins``), closer than counting every task alike, and
    raises ``RateMissing`` where there is none."""

    def __init__(self, device: str, threads: int, path: Path | None = None, remeasure: bool = False,
                 read_only: bool = False):
        self.path = path or bench_home() / "perf" / "rates.json"
        self.remeasure, self.measured, self.read_only = remeasure, set(), read_only
        self.stand_ins: set[str] = set()  # the plug-ins (kind/name) a read-only cache priced from an earlier rate
        self.machine = machine_key(device, threads)
        self.description = {"host": platform.node(), "device": device, "threads": threads, "torch": torch.__version__}
        try:
            self.all = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            self.all = {}
        self.entries: dict[str, Any] = self.all.setdefault(self.machine, {"machine": self.description})

    def get(self, key: str) -> Any:
        value = None if self.remeasure and key not in self.measured else self.entries.get(key)
        if value is None and self.read_only:
            return self._earlier(key)
        return value

    def _earlier(self, key: str) -> Any:
        """The newest rate of the plug-in ``key`` names (its key up to the last '/': kind and name), measured for
        another code version or settings; a method's rate is per unit of effort, so other steps price alike."""
        plugin = key.rsplit("/", 1)[0]
        earlier = [(v.get("measured", ""), k) for k, v in self.entries.items() if k.startswith(plugin + "/")]
        if not earlier:
            raise RateMissing(key)
        self.stand_ins.add(plugin)
        return self.entries[max(earlier)[1]]

    def put(self, key: str, value: Any) -> None:
        self.measured.add(key)
        self.entries[key] = {**value, "measured": time.strftime("%Y-%m-%d %H:%M")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".part")
        tmp.write_text(json.dumps(self.all, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


@dataclass
class Linear:
    """Seconds for ``batch`` photos at effort k: a + b k (b = 0 when the method has no effort knob)."""

    a: float
    b: float
    batch: int

    def seconds(self, photos: int, effort: float) -> float:
        return max(0.0, self.a + self.b * effort) * photos / self.batch


def _linear(times: dict[int, float], batch: int) -> Linear:
    if len(times) == 1:  # no effort knob: one timing, b = 0
        return Linear(*times.values(), 0.0, batch)
    (k1, t1), (k2, t2) = sorted(times.items())
    b = max(0.0, (t2 - t1) / (k2 - k1))
    return Linear(max(0.0, t1 - b * k1), b, batch)


def time_method(method_factory, surrogates: list[Any], fit_photos: torch.Tensor, probes: torch.Tensor,
                effort: str | None, values: tuple[int, int] = (1, 3)) -> dict[str, Any]:
    """Fit and protect seconds on these photos at two effort values (after a warm-up that fills per-process
    caches such as an identity bank's centroids), as a + b k; without an effort knob, one timing, b = 0."""
    runs = values if effort else (values[0],)
    times: dict[int, tuple[float, float]] = {}
    for k in (runs[0], *runs):  # the first run warms up
        method = method_factory({effort: k} if effort else {})
        fit_s, protect_s = time_calls(method, surrogates, fit_photos, probes, clock=cost_clock(fit_photos.device))
        times[k] = (fit_s, protect_s)
    return {"fit": asdict(_linear({k: t[0] for k, t in times.items()}, len(fit_photos))),
            "protect": asdict(_linear({k: t[1] for k, t in times.items()}, len(probes)))}


__all__ = ["RATES_FORMAT", "machine_key", "RateCache", "RateMissing", "Linear", "time_method"]
