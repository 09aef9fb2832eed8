"""Datasets in the standard identity/photo layout (LFW ``Name/Name_NNNN.jpg``), data-root resolution and splits.

Data root, first that applies: ``--data-root``, ``$BENCH_DATA``, ``../shared/data`` (next to the working folder
or to this checkout), then the small LFW subset embedded in the package. Under a root, a dataset folder may be
``lfw/images/<Name>/``, ``images/<Name>/`` or ``<Name>/`` directly.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.paths import embedded_data_root
from bench.core.validation import Interval, UsageError, check_ranges

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class DataError(Exception):
    """A data root or dataset that cannot be used; the message says what to do."""


def shared_data_candidates() -> list[Path]:
    here = Path(__file__).resolve().parents[2]
    return [Path.cwd().parent / "shared" / "data", here.parent / "shared" / "data"]


def resolve_data_root(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Return (root, how it was chosen)."""
    if explicit:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise DataError(f"--data-root {root} is not a folder")
        return root, "--data-root"
    env = os.environ.get("BENCH_DATA")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataError(f"BENCH_DATA={env} is not a folder; unset it or point it at a data root")
        return root, "BENCH_DATA"
    for cand in shared_data_candidates():
        if (cand / "lfw").is_dir():
            return cand, "../shared/data"
    return embedded_data_root(), "embedded LFW subset"


@dataclass
class Dataset:
    name: str
    root: Path
    identities: dict[str, list[Path]]  # identity -> photos, sorted by name
    excluded: dict[str, str] = field(default_factory=dict)  # relative path -> why it was left out
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> why it cannot be read (skipped and recorded)
    too_few: dict[str, str] = field(default_factory=dict)  # identity left out for its photo count -> why

    @property
    def num_photos(self) -> int:
        return sum(len(v) for v in self.identities.values())

    def at_least(self, min_photos: int) -> Dataset:
        """The identities with ``min_photos``+ photos (the rest in ``too_few``), from this listing: no folder is
        read again."""
        keep = {n: p for n, p in self.identities.items() if len(p) >= min_photos}
        if not keep:
            raise DataError(f"no identity under {self.root} has {min_photos}+ photos")
        too_few = {**self.too_few, **{n: f"{len(p)} usable photo(s); at least {min_photos} needed"
                                      for n, p in self.identities.items() if n not in keep}}
        return Dataset(self.name, self.root, keep, excluded=self.excluded, unreadable=self.unreadable,
                       too_few=too_few)

    def fingerprint(self) -> str:
        """A content key of the file list (names and sizes), for task keys."""
        h = hashlib.sha256(self.name.encode())
        for ident in sorted(self.identities):
            for p in self.identities[ident]:
                h.update(f"{ident}/{p.name}:{p.stat().st_size}".encode())
        return h.hexdigest()[:16]


def find_identity_folder(root: Path, dataset: str) -> Path:
    for cand in (root / dataset / "images", root / dataset, root / "images", root):
        if cand.is_dir() and any(_is_identity_dir(d) for d in cand.iterdir()):
            return cand
    raise DataError(
        f"no '{dataset}' identity folders under {root}: expected {root}/{dataset}/images/<Name>/<photo>.jpg "
        f"or {root}/<Name>/<photo>.jpg"
    )


def _is_identity_dir(d: Path) -> bool:
    try:
        return d.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir())
    except OSError:  # a folder we may not list: reported by load_identity_folders when it is the one used
        return False


def unreadable_reason(path: Path) -> str | None:
    """Why a file named like a photo cannot be read (None when it can): a symlink loop or a broken link, a
    folder, something other than a file, or no read permission. Checked before users and splits are drawn."""
    try:
        st = path.stat()  # follows links: a loop raises ELOOP, a broken link ENOENT
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}{', a symlink loop or broken link' if path.is_symlink() else ''})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder named like a photo"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def _photos(d: Path, excluded: dict[str, str], unreadable: dict[str, str]) -> list[Path]:
    """The readable photos of an identity folder, sorted; the others go to ``unreadable`` with the reason."""
    try:
        entries = list(d.iterdir())
    except OSError as exc:
        unreadable[str(d)] = f"identity folder cannot be listed ({exc.strerror or exc})"
        return []
    photos = []
    for p in entries:
        if p.suffix.lower() not in IMAGE_SUFFIXES or f"{d.name}/{p.name}" in excluded:
            continue
        why = unreadable_reason(p)
        if why:
            unreadable[str(p)] = why
        else:
            photos.append(p)
    return sorted(photos)


def load_identity_folders(
    root: str | os.PathLike, dataset: str = "lfw", min_photos: int = 1, max_identities: int | None = None
) -> Dataset:
    """Load ``identity/photo`` folders. LFW's errata list (labels/known_mislabeled_images_in_subset.txt), when
    present, removes photos that show someone else. Identities with fewer than ``min_photos`` photos are left
    out and listed in ``too_few`` with the reason. Files that cannot be read (symlink loops, folders named like
    photos, no permission) are left out first and listed in ``unreadable``: they never count towards an
    identity's photos, so users and splits are drawn on readable files only."""
    root = Path(root)
    folder = find_identity_folder(root, dataset)
    excluded: dict[str, str] = {}
    errata = folder.parent / "labels" / "known_mislabeled_images_in_subset.txt"
    if errata.exists():
        for line in errata.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                excluded[line] = "listed in LFW errata as a different person"
    identities: dict[str, list[Path]] = {}
    too_few: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for d in sorted(folder.iterdir()):
        if not d.is_dir():
            continue
        photos = _photos(d, excluded, unreadable)
        if len(photos) >= min_photos:
            identities[d.name] = photos
        else:
            too_few[d.name] = f"{len(photos)} usable photo(s); at least {min_photos} needed"
    if max_identities is not None:
        identities = dict(list(identities.items())[:max_identities])
    if not identities:
        raise DataError(f"no identity under {folder} has {min_photos}+ photos")
    return Dataset(dataset, folder, identities, excluded, unreadable=unreadable, too_few=too_few)


@dataclass(frozen=True)
class DataSource:
    """A data root, how it was chosen (``--data-root``, ``BENCH_DATA`` ...), and every identity folder of one
    dataset under it (photo counts unfiltered: ``dataset.at_least(n)`` filters without reading folders again)."""

    root: Path
    how: str
    dataset: Dataset

    def lfw_fingerprint(self) -> str | None:
        """The fingerprint of the LFW copy under this root, which calibrations are keyed by (None: no LFW here)."""
        if self.dataset.name == "lfw":
            return self.dataset.fingerprint()
        return lfw_fingerprint(self.root)


def lfw_fingerprint(data_root: str | os.PathLike) -> str | None:
    """The fingerprint of the LFW copy under a data root (what calibrations are keyed by), None if it has none."""
    try:
        return load_identity_folders(Path(data_root), "lfw").fingerprint()
    except DataError:
        return None


def locate_data(data_root: str | os.PathLike | None, dataset: str) -> DataSource:
    """Resolve the data root (``bench.data.datasets.resolve_data_root``) and list ``dataset`` under it; ``DataError`` when
    either cannot be had."""
    root, how = resolve_data_root(data_root)
    return DataSource(root, how, load_identity_folders(root, dataset))


@dataclass(frozen=True)
class SplitSpec:
    """Per-identity split into clean gallery, held-out probes and the photos a universal mask is fitted on.

    Defaults follow Chameleon (ECCV 2024): probe / gallery / fit = 10% / 20% / 70%, seed 2023, each at least one
    photo. Per-image methods ignore the fit part.
    """

    gallery_fraction: float = 0.2
    probe_fraction: float = 0.1
    seed: int = 2023

    def __post_init__(self) -> None:
        share = Interval(0, 1, low_open=True, high_open=True)
        check_ranges(self, "split: ", gallery_fraction=share, probe_fraction=share)
        if self.gallery_fraction + self.probe_fraction >= 1:
            raise UsageError(f"split: gallery_fraction + probe_fraction = "
                             f"{self.gallery_fraction + self.probe_fraction:g}; allowed: < 1 (photos are left to fit on)")


@dataclass
class IdentitySplit:
    gallery: list[Path]
    probe: list[Path]
    fit: list[Path]


def split_identity(identity: str, photos: list[Path], spec: SplitSpec) -> IdentitySplit:
    """Deterministic per identity: a seeded shuffle keyed by (seed, identity), independent of other identities."""
    import numpy as np

    if len(photos) < 3:
        raise DataError(f"{identity} has {len(photos)} photos; a split needs at least 3 (gallery, probe, fit)")
    key = int.from_bytes(hashlib.sha256(f"{spec.seed}:{identity}".encode()).digest()[:8], "little")
    order = np.random.default_rng(key).permutation(len(photos))
    shuffled = [photos[i] for i in order]
    n = len(photos)
    n_gallery = max(1, round(n * spec.gallery_fraction))
    n_probe = max(1, round(n * spec.probe_fraction))
    n_gallery = min(n_gallery, n - 2)
    n_probe = min(n_probe, n - n_gallery - 1)
    return IdentitySplit(
        gallery=sorted(shuffled[:n_gallery]),
        probe=sorted(shuffled[n_gallery : n_gallery + n_probe]),
        fit=sorted(shuffled[n_gallery + n_probe :]),
    )
