"""What task bodies run on, and what they return.

A :class:`Workspace` holds what the run decided (the prepared data, the scenarios, the configured plug-ins by name,
the run context, the photo-space settings) and is frozen: no body changes it, and ``ws.method(...)`` hands out a
bound copy of a method (``Method.bind``), never a changed shared instance. What must change while the tasks run is
kept apart, in :class:`RunCaches`, the one object a workspace owns that does: the attacker views made so far, the
quality metrics that cannot run here, and the work log. A body returns a :class:`TaskOutput` and never writes the
store (``bench.run.executors`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from bench.core.work_log import WorkLog
from bench.data.canvas import from_uint8
from bench.run.context import AdversaryContext, RunContext
from bench.run.photo_space import AttackerView, attacker_detector
from bench.run.prepare import Prepared
from bench.run.store import ResultRow


@dataclass
class TaskOutput:
    info: dict[str, Any]
    rows: list[ResultRow]
    tensors: dict[str, torch.Tensor] | None = None  # the task's artifact, when it keeps one
    artifact_sha256: str | None = None  # set instead of tensors where a worker wrote the artifact itself


class UnavailableMetrics:
    """Quality metrics that cannot run in this process (weights or an optional package missing), each with why:
    reported once through ``report``, then left out of every later task's rows."""

    def __init__(self, report: Callable[[str], None] = print) -> None:
        self.report = report
        self.reasons: dict[str, str] = {}  # metric row -> why it cannot run

    def __contains__(self, row: str) -> bool:
        return row in self.reasons

    def record(self, metric: Any, exc: Exception) -> None:
        self.reasons[metric.row] = str(exc)
        self.report(f"[yellow]{metric.label} unavailable[/yellow]: {exc}")


class RunCaches:
    """What a workspace's bodies add to while they run, in this process: attacker views by detector name (made on
    first use: loading a detector is costly), the metrics found unavailable, and the work log (what was computed,
    so recomputations show; an executor whose tasks run elsewhere merges the workers' logs in)."""

    def __init__(self, work: WorkLog | None = None, report: Callable[[str], None] = print) -> None:
        self.work = WorkLog() if work is None else work
        self.unavailable = UnavailableMetrics(report)
        self._views: dict[str, AttackerView] = {}

    def attacker_view(self, detector: str, device: str) -> AttackerView:
        if detector not in self._views:
            self._views[detector] = AttackerView(detector, device)
        return self._views[detector]


@dataclass(frozen=True)
class Workspace:
    """The run's prepared data, its configured plug-ins by name and its run context (read-only), with the caches
    its bodies fill (``caches``)."""

    data: Prepared
    device: str
    scenarios: tuple[str, ...]
    quantize: bool
    context: RunContext
    methods: Mapping[str, Any]
    targets: Mapping[str, Any]
    adversaries: Mapping[str, Any]
    surrogates: tuple[Any, ...]
    load_artifact: Callable[[str], dict[str, torch.Tensor]]
    caches: RunCaches = field(default_factory=RunCaches)
    protocol: str = "templates"  # how probe queries are scored (bench.measures.psr.probe_outcome)
    space: str = "crop"  # where the recogniser meets protected faces (bench.run.photo_space)
    photo_jpeg_quality: int = 90

    def __post_init__(self) -> None:  # read-only views: a body cannot swap a run's plug-in
        for name in ("methods", "targets", "adversaries"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "surrogates", tuple(self.surrogates))

    def canvases(self, photos) -> torch.Tensor:
        return from_uint8(self.data.stack(photos)).to(self.device)

    def embed_clean(self, recogniser: Any, photos: list, model: str | None = None) -> torch.Tensor:
        """Clean photos through a recogniser (``model`` names it when it is not the target as loaded, e.g. as an
        adversary adapted it), noted in the work log; inference mode, as nothing flows back through them."""
        self.caches.work.note("clean-embedded", model or recogniser.name, (self.data.digests[p] for p in photos))
        with torch.inference_mode():
            return recogniser.embed(self.canvases(photos))

    def attacker_view(self, target: str) -> AttackerView:
        """The detector and aligner of an attacker using ``target`` (photo space)."""
        return self.caches.attacker_view(attacker_detector(self.targets[target]), self.device)

    def method(self, name: str, seed: int) -> Any:
        """A copy of the named method bound to the run context for this seed (the configured one is unchanged)."""
        return self.methods[name].bind(self.context, seed)

    def adversary_context(self, adversary: str, method: str) -> AdversaryContext:
        """What an adaptive adversary may use against ``method``: what its ``needs()`` declare (never an
        evaluated user's photo), the method under test and its surrogates."""
        return AdversaryContext(run=self.context.for_plugin(self.adversaries[adversary].needs()),
                                method=self.methods[method].bind(self.context), surrogates=list(self.surrogates))


__all__ = ["RunCaches", "TaskOutput", "UnavailableMetrics", "Workspace"]
