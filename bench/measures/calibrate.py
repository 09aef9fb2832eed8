"""LFW verification accuracy and decision thresholds of a target: what ``bench targets`` measures and caches.

Protocol (docs/models.md). This copy of LFW keeps only identities with 4+ photos, so of View 2's official
pairs (``labels/pairs.txt``, 10 folds) nearly all matched pairs survive but only a handful of mismatched ones:
the official accuracy would be little more than the acceptance rate of matched pairs. Hence a balanced variant:

- keep every usable official pair (both photos present, not in LFW's errata, both aligned);
- within each fold, add mismatched pairs drawn with a fixed seed among that fold's identities (two distinct
  identities uniformly, then one photo of each, among the photos of the fold's pairs unless asked to draw on
  more) until mismatched equals matched. LFW's folds are identity-disjoint, and so stay the added pairs;
- 10-fold accuracy: for each fold, the threshold with the best accuracy on the other nine folds, applied to the
  held-out fold; mean and standard deviation over folds.

Cosine thresholds at a false-accept rate (FAR) come from ALL cross-identity pairs of the embedded photos
(millions), computed in row chunks and reduced with ``topk``; the true-accept rate (TAR) at that threshold is
measured on the matched pairs. A pair is accepted as the same person when its cosine similarity is >= the
threshold. Timing is embedding only (from aligned canvases), at batch 32, after a warm-up batch.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from bench.measures.lfw_pairs import read_lfw_pairs
from bench.measures.verification import (
    PairSet,
    balance_folds,
    impostor_top_scores,
    kfold_accuracy,
    threshold_at_far,
)

CALIBRATION_VERSION = 1  # bump when the protocol or its arithmetic changes: cached calibrations are then redone
FARS = {"far1e-2": 1e-2, "far1e-3": 1e-3}
DEFAULT_SEED = 2023
TIMING_BATCH = 32

T = TypeVar("T")
# track(iterable, total, description) -> the same items, reporting progress (rich or nothing)
Tracker = Callable[[Iterable[T], int, str], Iterator[T]]


def no_progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    yield from items


def align_photos(aligner, photos: Sequence[Path], track: Tracker = no_progress) -> tuple[np.ndarray, list[str]]:
    """Align every photo (cached); returns the mask of photos that aligned and the failure messages."""
    from bench.data.decoding import FaceError

    ok = np.zeros(len(photos), dtype=bool)
    failures: list[str] = []
    for i, path in enumerate(track(photos, len(photos), "aligning")):
        try:
            aligner.align(path)
            ok[i] = True
        except FaceError as exc:
            failures.append(str(exc))
    return ok, failures


def _canvas_batches(aligner, photos: Sequence[Path], batch: int) -> Iterator[torch.Tensor]:
    from bench.data.faces import canvases_to_tensor

    for start in range(0, len(photos), batch):
        yield canvases_to_tensor([aligner.align(p).canvas for p in photos[start : start + batch]])


def embed_photos(target, aligner, photos: Sequence[Path], track: Tracker = no_progress) -> torch.Tensor:
    """Embeddings of aligned photos (N x D on the target's device); canvases are read back from the alignment
    cache batch by batch, so memory holds one batch of canvases at a time."""
    batch = target.config.batch_size
    n_batches = math.ceil(len(photos) / batch)
    out = []
    with torch.no_grad():
        for canvases in track(_canvas_batches(aligner, photos, batch), n_batches, "embedding"):
            out.append(target.embed(canvases.to(target.device)).detach())
    return torch.cat(out)


def ms_per_face(target, canvases: torch.Tensor, batch: int = TIMING_BATCH, repeats: int = 3) -> tuple[float, float]:
    """Milliseconds per face embedding one batch of ``batch`` canvases, after a warm-up batch: the median wall
    time, and the median CPU time of this process (all its threads). On a shared machine the wall time grows
    with other processes' load; the CPU time much less."""
    if len(canvases) == 0:
        raise ValueError("timing needs at least one canvas")
    reps = math.ceil(batch / len(canvases))
    x = canvases.repeat(reps, 1, 1, 1)[:batch].to(target.device)
    saved = target.config.batch_size
    target.config.batch_size = batch
    wall, cpu = [], []
    try:
        with torch.no_grad():
            for i in range(repeats + 1):
                _sync(x.device)
                t0, c0 = time.perf_counter(), time.process_time()
                target.embed(x)
                _sync(x.device)
                if i:  # the first pass warms up caches and lazy initialisation
                    wall.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
    finally:
        target.config.batch_size = saved
    return 1000 * float(np.median(wall)) / batch, 1000 * float(np.median(cpu)) / batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def code_version() -> str:
    try:
        version = metadata.version("cloakbench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"cloakbench {version}, calibration protocol {CALIBRATION_VERSION}"


def weights_sha256(target) -> list[str]:
    return [spec.sha256 for spec in type(target).weights]


def input_signature(target) -> dict[str, Any]:
    """What the target declares about its input: a change means the cached figures no longer apply."""
    framing = getattr(target, "framing", None)
    return {
        "preprocessing": getattr(target, "preprocessing", ""),
        "framing_size": getattr(framing, "size", None),
        "framing_template": [list(p) for p in getattr(framing, "template", ())],
    }


def calibrate(
    target,
    lfw_root: str | os.PathLike,
    *,
    aligner=None,
    seed: int = DEFAULT_SEED,
    folds: Sequence[int] | None = None,
    pairs_per_fold: int | None = None,
    extra_photos_per_identity: int | None = 0,
    track: Tracker = no_progress,
    impostor_chunk: int = 1024,
    timing_repeats: int = 3,
) -> dict[str, Any]:
    """Measure ``target`` on LFW as the module docstring describes; returns the calibration record."""
    from bench.data.faces import Aligner

    aligner = aligner or Aligner()
    lfw = read_lfw_pairs(lfw_root, folds, pairs_per_fold, extra_photos_per_identity)
    aligned, failures = align_photos(aligner, lfw.photos, track)

    # keep aligned photos only, renumbered 0..M-1
    new_index = np.full(len(lfw.photos), -1, dtype=np.int64)
    new_index[aligned] = np.arange(int(aligned.sum()))
    photos = [p for p, ok in zip(lfw.photos, aligned, strict=True) if ok]
    identity_ids = {name: i for i, name in enumerate(sorted(set(lfw.identities)))}
    labels = np.array([identity_ids[n] for n, ok in zip(lfw.identities, aligned, strict=True) if ok], dtype=np.int64)
    official = lfw.pairs.select(aligned[lfw.pairs.pairs].all(axis=1))
    official = PairSet(new_index[official.pairs], official.same, official.fold)
    pools = {f: new_index[np.array(m)][aligned[np.array(m)]] for f, m in lfw.pools.items()}
    balanced = balance_folds(official, labels, pools, seed)

    target.load()
    emb = torch.nn.functional.normalize(embed_photos(target, aligner, photos, track), dim=1)
    labels_t = torch.as_tensor(labels, device=emb.device)
    pair_t = torch.as_tensor(balanced.pairs, device=emb.device)
    scores = (emb[pair_t[:, 0]] * emb[pair_t[:, 1]]).sum(1).cpu().numpy().astype(np.float64)

    accs, fold_thresholds = kfold_accuracy(scores, balanced.same, balanced.fold)

    n = len(emb)
    k_needed = int(math.floor(max(FARS.values()) * n * (n - 1) / 2)) + 1  # bounds floor(far * impostors) + 1
    top, n_impostors = impostor_top_scores(emb, labels_t, k_needed, impostor_chunk)
    thresholds = {key: threshold_at_far(top, n_impostors, far) for key, far in FARS.items()}
    matched = scores[balanced.same]
    tar = {key: float(np.mean(matched >= thr)) for key, thr in thresholds.items()}

    first_batch = next(_canvas_batches(aligner, photos, TIMING_BATCH))
    wall_ms, cpu_ms = ms_per_face(target, first_batch, repeats=timing_repeats)

    return {
        "name": target.name,
        "lfw_accuracy": float(accs.mean()),
        "lfw_accuracy_std": float(accs.std()),
        "lfw_fold_accuracies": [float(a) for a in accs],
        "lfw_fold_thresholds": [float(t) for t in fold_thresholds],
        "tar_far1e-2": tar["far1e-2"],
        "tar_far1e-3": tar["far1e-3"],
        "thresholds": thresholds,
        "ms_per_face": wall_ms,
        "cpu_ms_per_face": cpu_ms,
        "pairs": {
            "matched": int(balanced.same.sum()),
            "mismatched": int((~balanced.same).sum()),
            "official_mismatched": int((~official.same).sum()),
            "official_dropped": lfw.dropped + int(len(lfw.pairs) - len(official)),
            "folds": int(len(np.unique(balanced.fold))),
        },
        "impostor_pairs": n_impostors,
        "photos_embedded": len(photos),
        "photos_failed": len(failures),
        "failures": failures[:20],
        "weights_sha256": weights_sha256(target),
        "input": input_signature(target),
        "data": {"lfw_root": str(Path(lfw_root).resolve()), "fingerprint": lfw.data_fingerprint, "seed": seed,
                 "extra_photos_per_identity": extra_photos_per_identity,
                 "subset": folds is not None or pairs_per_fold is not None},
        "device": str(target.device),
        "torch_threads": torch.get_num_threads(),
        "calibration_version": CALIBRATION_VERSION,
        "code_version": code_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def stale_reason(record: dict[str, Any], target, data_fingerprint: str | None = None) -> str | None:
    """Why a cached calibration cannot be reused for ``target`` (None when it can)."""
    if not record:
        return "not calibrated yet"
    if record.get("weights_sha256") != weights_sha256(target):
        return "weights changed"
    if record.get("input") != input_signature(target):
        return "preprocessing or framing changed"
    if record.get("calibration_version") != CALIBRATION_VERSION:
        return "calibration protocol changed"
    if record.get("data", {}).get("subset"):
        return "cached calibration was on a subset of LFW"
    if data_fingerprint is not None and record.get("data", {}).get("fingerprint") != data_fingerprint:
        return "LFW copy differs"
    return None
