"""Protection task bodies: fit a method on a user's photos and protect the rest (``protect``), post the protected
photos as JPEG files (``publish_photos``, photo space), and the quality rows both report."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from bench.data.canvas import face_region, from_uint8, to_uint8
from bench.measures.registry import METRICS
from bench.run.budget import check_budget
from bench.run.photo_space import as_tensor, photo_tensor, publish_user
from bench.run.store import ResultRow
from bench.run.workspace import TaskOutput, UnavailableMetrics, Workspace
from methods.base import seeded


def quality_rows(unavailable: UnavailableMetrics, shown: torch.Tensor, clean: torch.Tensor,
                 **tags: Any) -> list[ResultRow]:
    """One row per registered quality metric (``METRICS.quality()``): the mean over photos, on the metric's
    region. A metric that cannot run here (weights or package missing) is reported once and left out."""
    regions = {"face": (face_region(shown), face_region(clean)), "canvas": (shown, clean)}
    return measured_rows(unavailable, METRICS.quality(), lambda metric: metric.compute(*regions[metric.region]), tags)


def measured_rows(unavailable: UnavailableMetrics, metrics: list, values_of: Callable[[Any], torch.Tensor],
                  tags: dict[str, Any]) -> list[ResultRow]:
    """One row per metric, the mean of ``values_of(metric)`` (per photo); a metric that cannot run here is
    reported once and left out."""
    rows = []
    for metric in metrics:
        if metric.row in unavailable:
            continue
        try:
            with torch.no_grad():
                values = values_of(metric)
        except Exception as exc:  # a quality extra: report why it is missing, keep the run going
            unavailable.record(metric, exc)
            continue
        if metric.clamp_max is not None:
            values = values.clamp(max=metric.clamp_max)
        rows.append(ResultRow(metric.row, float(values.mean()), **tags))
    return rows


def protect(ws: Workspace, method: str, user: str, seed: int) -> TaskOutput:
    m = ws.method(method, seed)
    split = ws.data.splits[user]
    fit_photos, probes = ws.canvases(split.fit), ws.canvases(split.probe)
    # The user's photos to protect, in one call: a per-image method batches over all of them.
    clean_gallery = ws.canvases(split.gallery) if "gallery" in ws.scenarios else probes[:0]
    # torch's global RNG seeded for this task only (libraries such as torchattacks take no generator)
    with seeded(seed, ws.device):
        t0 = time.perf_counter()
        protector = m.fit(fit_photos, list(ws.surrogates), seed)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = protector.protect(torch.cat([probes, clean_gallery])).detach()
        protect_ms = 1000 * (time.perf_counter() - t0) / max(1, len(out))
    protected, enrolled = out[: len(probes)], out[len(probes):]
    linf = float((protected - probes).abs().max()) if len(probes) else 0.0
    budget = m.budget().bounds()
    measured = check_budget(m.name, budget, protected, probes, f"{user}'s probe photo")
    published = to_uint8(protected) if ws.quantize else protected
    tensors = {"protected": published}
    if "gallery" in ws.scenarios:
        check_budget(m.name, budget, enrolled, clean_gallery, f"{user}'s gallery photo")
        tensors["protected_gallery"] = to_uint8(enrolled) if ws.quantize else enrolled
    if protector.has_key:
        tensors["deobfuscated"] = to_uint8(protector.deobfuscate(from_uint8(published).to(ws.device)))
    tensors.update({f"state/{k}": v for k, v in protector.state().items()})
    shown = from_uint8(published).to(ws.device) if ws.quantize else protected
    tags = {"method": m.name, "user": user}
    rows = quality_rows(ws.caches.unavailable, shown, probes, **tags)
    rows += [ResultRow(name, value, **tags) for name, value in (
        ("linf", linf), ("fit_s", fit_s), ("protect_ms_per_photo", protect_ms), ("probes", float(len(probes))))]
    info = {"info": protector.info(), "budget": budget, "kind": m.kind, "budget_measured": measured,
            "context_used": dict(m.context.used)}
    return TaskOutput(info, rows, tensors)


def publish_photos(ws: Workspace, method: str, user: str, protect_key: str, quality: int) -> TaskOutput:
    """Photo space: the user's protected probe photos as posted (JPEG bytes, the artifact) and the quality of
    each whole protected photo against the original (``METRICS.photo_quality()``)."""
    probes = ws.data.splits[user].probe
    protected = ws.load_artifact(protect_key)["protected"]
    posted, pairs = publish_user(probes, ws.data.faces, ws.data.canvases,
                                 protected if protected.dtype == torch.uint8 else to_uint8(protected), quality)

    def values_of(metric):
        return torch.cat([metric.compute(photo_tensor(p.published, ws.device), photo_tensor(p.original, ws.device))
                          .flatten() for p in pairs])

    rows = measured_rows(ws.caches.unavailable, METRICS.photo_quality(), values_of, {"method": method, "user": user})
    return TaskOutput({"photos": len(posted), "jpeg_quality": quality}, rows,
                      {f"posted/{i}": as_tensor(data) for i, data in enumerate(posted)})
