"""LFW verification accuracy and decision thresholds of a target: what ``bench targets`` measures and caches.

Protocol (shared MODELS.md). This copy of LFW keeps only identities with 4+ photos, so of View 2's official
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
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from bench.data import DataError, load_identity_folders
from bench.integrity import write_checked

CALIBRATION_VERSION = 1  # bump when the protocol or its arithmetic changes: cached calibrations are then redone
FARS = {"far1e-2": 1e-2, "far1e-3": 1e-3}
DEFAULT_SEED = 2023
TIMING_BATCH = 32

T = TypeVar("T")
# track(iterable, total, description) -> the same items, reporting progress (rich or nothing)
Tracker = Callable[[Iterable[T], int, str], Iterator[T]]


def no_progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    yield from items


# ------------------------------------------------------------------------------------------------------------
# Pure math: folds, threshold search, FAR thresholds
# ------------------------------------------------------------------------------------------------------------
@dataclass
class PairSet:
    """Verification pairs as photo indices: ``pairs`` P x 2, ``same`` (P,) bool, ``fold`` (P,) int."""

    pairs: np.ndarray
    same: np.ndarray
    fold: np.ndarray

    def __len__(self) -> int:
        return len(self.same)

    def select(self, keep: np.ndarray) -> PairSet:
        return PairSet(self.pairs[keep], self.same[keep], self.fold[keep])


def balance_folds(pairs: PairSet, labels: np.ndarray, pools: dict[int, np.ndarray], seed: int) -> PairSet:
    """Add mismatched pairs in each fold until there are as many as matched ones.

    ``labels[i]`` is the identity of photo i; ``pools[f]`` the photo indices of fold f's identities that new
    pairs may use. Two distinct identities of the pool are drawn uniformly, then one photo of each; a pair
    already present (in either order) is drawn again. Each fold has its own generator seeded by (seed, fold),
    so a fold's pairs do not depend on which other folds are present.
    """
    out_pairs, out_same, out_fold = [pairs.pairs], [pairs.same], [pairs.fold]
    for f in np.unique(pairs.fold):
        in_fold = pairs.fold == f
        need = int(pairs.same[in_fold].sum() - (~pairs.same[in_fold]).sum())
        if need <= 0:
            continue
        pool = np.asarray(pools.get(int(f), []), dtype=np.int64)
        by_identity = {ident: pool[labels[pool] == ident] for ident in np.unique(labels[pool])}
        identities = np.array(sorted(by_identity))
        if len(identities) < 2:
            raise ValueError(f"fold {f} has fewer than two identities to draw mismatched pairs from")
        seen = {(min(a, b), max(a, b)) for a, b in pairs.pairs[in_fold].tolist()}
        rng = np.random.default_rng([seed, int(f)])
        added: list[tuple[int, int]] = []
        attempts = 0
        while len(added) < need:
            attempts += 1
            if attempts > 100 * need + 1000:
                raise ValueError(f"fold {f}: cannot draw {need} distinct mismatched pairs from its photos")
            id_a, id_b = rng.choice(identities, size=2, replace=False)
            a = int(rng.choice(by_identity[id_a]))
            b = int(rng.choice(by_identity[id_b]))
            key = (min(a, b), max(a, b))
            if key not in seen:
                seen.add(key)
                added.append((a, b))
        out_pairs.append(np.array(added, dtype=np.int64).reshape(-1, 2))
        out_same.append(np.zeros(need, dtype=bool))
        out_fold.append(np.full(need, f, dtype=pairs.fold.dtype))
    return PairSet(np.concatenate(out_pairs), np.concatenate(out_same), np.concatenate(out_fold))


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs judged right when a pair is accepted iff its score >= threshold."""
    return float(np.mean((np.asarray(scores) >= threshold) == np.asarray(same, dtype=bool)))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold of best accuracy on (scores, same) and that accuracy.

    Candidates lie midway between consecutive distinct sorted scores (and just outside both ends); the first
    best one (lowest threshold) is taken. O(P log P).
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if len(scores) == 0:
        raise ValueError("best_threshold needs at least one pair")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    # rejecting the k lowest scores (k = 0..P): right = mismatched among them + matched among the rest
    mismatched_below = np.concatenate([[0], np.cumsum(~y)])
    matched_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    right = mismatched_below + matched_above
    # a cut between two equal scores is not realisable
    valid = np.ones(len(s) + 1, dtype=bool)
    valid[1:-1] = s[1:] > s[:-1]
    k = int(np.flatnonzero(valid)[np.argmax(right[valid])])
    if k == 0:
        threshold = s[0]
    elif k == len(s):
        threshold = float(np.nextafter(s[-1], np.inf))
    else:
        threshold = (s[k - 1] + s[k]) / 2
    return float(threshold), float(right[k] / len(s))


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out fold: the threshold chosen on the other folds and the accuracy it gives on this one."""
    folds = np.unique(fold)
    if len(folds) < 2:
        raise ValueError("k-fold accuracy needs at least two folds")
    accs, thresholds = [], []
    for f in folds:
        test = fold == f
        thr, _ = best_threshold(scores[~test], same[~test])
        thresholds.append(thr)
        accs.append(accuracy_at(scores[test], same[test], thr))
    return np.array(accs), np.array(thresholds)


def impostor_top_scores(
    embeddings: torch.Tensor, labels: torch.Tensor, k: int, chunk: int = 1024
) -> tuple[torch.Tensor, int]:
    """The ``k`` highest cosine scores over all pairs i < j of different identity (descending) and their count.

    Rows are processed ``chunk`` at a time, so memory stays at chunk x N scores plus the running top k.
    ``embeddings`` are unit-norm N x D; ``labels`` (N,) identity ids on the same device.
    """
    n = len(embeddings)
    top = embeddings.new_empty(0)
    count = 0
    cols = torch.arange(n, device=embeddings.device)
    for start in range(0, n, chunk):
        rows = cols[start : start + chunk]
        block = embeddings[rows] @ embeddings.T
        keep = (cols[None, :] > rows[:, None]) & (labels[None, :] != labels[rows][:, None])
        values = block[keep]
        count += values.numel()
        merged = torch.cat([top, values])
        top = merged.topk(min(k, merged.numel())).values
    return top, count


def threshold_at_far(top_desc: torch.Tensor | np.ndarray, n_impostors: int, far: float) -> float:
    """The threshold accepting at most ``far`` of the impostor pairs (accept iff score >= threshold).

    ``top_desc`` holds the highest impostor scores in descending order, at least floor(far * n) + 1 of them.
    With m = floor(far * n), the threshold lies midway between the m-th and (m+1)-th highest score, so exactly
    m impostors (barring ties) are accepted.
    """
    top = np.asarray(top_desc.cpu() if isinstance(top_desc, torch.Tensor) else top_desc, dtype=np.float64)
    if n_impostors <= 0:
        raise ValueError("no impostor pairs: the photos must cover at least two identities")
    m = int(math.floor(far * n_impostors))
    if len(top) < m + 1:
        raise ValueError(f"need the {m + 1} highest impostor scores for FAR {far}, got {len(top)}")
    if m == 0:
        return float(np.nextafter(top[0], np.inf))
    return float((top[m - 1] + top[m]) / 2)


# ------------------------------------------------------------------------------------------------------------
# LFW pairs
# ------------------------------------------------------------------------------------------------------------
@dataclass
class LfwPairs:
    """Usable official pairs of LFW View 2, with the photos they (and the sampling pools) draw on."""

    photos: list[Path]  # index -> photo
    identities: list[str]  # index -> identity name
    pairs: PairSet  # official pairs, indices into photos
    pools: dict[int, list[int]]  # fold -> photo indices mismatched pairs may be drawn from
    dropped: int  # official pairs naming a photo absent from this copy (or in LFW's errata)
    data_fingerprint: str


def locate_pairs_file(images_folder: Path, lfw_root: Path) -> Path:
    for cand in (images_folder.parent / "labels" / "pairs.txt", lfw_root / "labels" / "pairs.txt",
                 lfw_root / "pairs.txt", images_folder.parent / "pairs.txt"):
        if cand.is_file():
            return cand
    raise DataError(
        f"no LFW pairs file under {lfw_root}: calibration needs View 2's pairs.txt at "
        f"{images_folder.parent / 'labels' / 'pairs.txt'} (from the LFW site, unchanged)"
    )


def read_lfw_pairs(
    lfw_root: str | os.PathLike,
    folds: Sequence[int] | None = None,
    pairs_per_fold: int | None = None,
    extra_photos_per_identity: int | None = None,
) -> LfwPairs:
    """Parse pairs.txt and keep the pairs whose photos are in this copy.

    ``folds`` (0-based) and ``pairs_per_fold`` (at most that many matched and that many mismatched official
    pairs per fold, in file order) shrink the set for quick runs. Each fold's sampling pool is every photo of
    its identities, or only those in its pairs plus the first ``extra_photos_per_identity`` of each.
    """
    lfw_root = Path(lfw_root)
    dataset = load_identity_folders(lfw_root, "lfw")
    pairs_file = locate_pairs_file(dataset.root, lfw_root)
    lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    try:
        n_folds, per_half = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise DataError(f"{pairs_file}: first line must be '<folds> <pairs per half-fold>'") from None
    rows = lines[1:]
    if len(rows) != n_folds * 2 * per_half:
        raise DataError(f"{pairs_file}: expected {n_folds * 2 * per_half} pair lines, found {len(rows)}")
    present = {p: ident for ident, photos in dataset.identities.items() for p in photos}

    def photo(name: str, number: str) -> Path:
        return dataset.root / name / f"{name}_{int(number):04d}.jpg"

    index: dict[Path, int] = {}
    photos: list[Path] = []

    def idx(path: Path) -> int:
        if path not in index:
            index[path] = len(photos)
            photos.append(path)
        return index[path]

    chosen = range(n_folds) if folds is None else folds
    pair_rows, same_rows, fold_rows, dropped = [], [], [], 0
    for f in chosen:
        if not 0 <= f < n_folds:
            raise DataError(f"fold {f} does not exist: {pairs_file} has folds 0..{n_folds - 1}")
        taken = {True: 0, False: 0}
        for row in rows[f * 2 * per_half : (f + 1) * 2 * per_half]:
            if len(row) == 3:
                a, b, same = photo(row[0], row[1]), photo(row[0], row[2]), True
            elif len(row) == 4:
                a, b, same = photo(row[0], row[1]), photo(row[2], row[3]), False
            else:
                raise DataError(f"{pairs_file}: malformed pair line {' '.join(row)!r}")
            if a not in present or b not in present:
                dropped += 1
                continue
            if pairs_per_fold is not None and taken[same] >= pairs_per_fold:
                continue
            taken[same] += 1
            pair_rows.append((idx(a), idx(b)))
            same_rows.append(same)
            fold_rows.append(f)
    if not pair_rows:
        raise DataError(f"no pair of {pairs_file} has both photos under {dataset.root}")
    pools: dict[int, list[int]] = {}
    fold_arr = np.array(fold_rows)
    pair_arr = np.array(pair_rows, dtype=np.int64)
    for f in np.unique(fold_arr):
        members = sorted(set(pair_arr[fold_arr == f].ravel().tolist()))
        fold_identities = sorted({present[photos[i]] for i in members})
        for ident in fold_identities:
            extra = dataset.identities[ident]
            if extra_photos_per_identity is not None:
                extra = extra[:extra_photos_per_identity]
            members.extend(idx(p) for p in extra)
        pools[int(f)] = sorted(set(members))
    return LfwPairs(
        photos=photos,
        identities=[present[p] for p in photos],
        pairs=PairSet(pair_arr, np.array(same_rows, dtype=bool), fold_arr),
        pools=pools,
        dropped=dropped,
        data_fingerprint=dataset.fingerprint(),
    )


# ------------------------------------------------------------------------------------------------------------
# Alignment, embedding, timing
# ------------------------------------------------------------------------------------------------------------
def align_photos(aligner, photos: Sequence[Path], track: Tracker = no_progress) -> tuple[np.ndarray, list[str]]:
    """Align every photo (cached); returns the mask of photos that aligned and the failure messages."""
    from bench.faces import FaceError

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
    from bench.faces import canvases_to_tensor

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


# ------------------------------------------------------------------------------------------------------------
# The whole calibration
# ------------------------------------------------------------------------------------------------------------
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
    from bench.faces import Aligner

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


def save_calibration(record: dict[str, Any]) -> Path:
    from targets.base import calibration_path

    path = calibration_path(record["name"])
    write_checked(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
    return path


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
