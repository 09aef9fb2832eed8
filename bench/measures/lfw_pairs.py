"""LFW View 2's official pairs (``labels/pairs.txt``, 10 folds) as far as this copy of LFW holds their photos,
with the photos each fold may draw extra mismatched pairs from (``bench.measures.calibrate`` balances the folds).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.datasets import DataError, load_identity_folders
from bench.measures.verification import PairSet


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


__all__ = ["LfwPairs", "locate_pairs_file", "read_lfw_pairs"]
