"""The data side of a run: select users and gallery identities, split them, align what is used.

Users are drawn (seeded) among identities with enough photos; the gallery holds the users and up to
``gallery_identities`` others. Splits are made on file lists first, then only what is used is aligned: every
photo of a user, the gallery part of anyone else. A photo that fails alignment leaves its part; an identity left
without a gallery (or a user without probes or fit photos) leaves the run, with the reason recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.progress import Reporter
from bench.core.validation import UsageError, check_device, check_output_folder
from bench.data.datasets import (
    DataError,
    Dataset,
    DataSource,
    IdentitySplit,
    load_identity_folders,
    locate_data,
    split_identity,
)
from bench.data.faces import AlignedFace, canvases_to_tensor
from bench.data.identity_faces import IdentityCheck, IdentityFaces
from bench.registry import TARGETS
from bench.run.plan import DataInfo
from bench.run.suites import Suite


@dataclass
class Prepared:
    """Aligned canvases and splits of the selected identities."""

    dataset: Dataset
    users: list[str]
    splits: dict[str, IdentitySplit]
    canvases: dict[Path, np.ndarray]  # photo -> uint8 canvas
    digests: dict[Path, str]
    # photo -> its aligned face (matrix, landmarks, box): where photo-space evaluation puts a protected face back
    faces: dict[Path, AlignedFace] = field(default_factory=dict)

    def stack(self, photos: list[Path]) -> torch.Tensor:
        arr = np.stack([self.canvases[p] for p in photos])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # uint8

    def gallery(self) -> tuple[list[Path], list[str]]:
        photos, labels = [], []
        for ident, split in sorted(self.splits.items()):
            photos += split.gallery
            labels += [ident] * len(split.gallery)
        return photos, labels

    def describe(self) -> DataInfo:
        """What the planner needs to know of the data (digests, not pixels)."""
        gallery, labels = self.gallery()
        digests = self.digests

        def of(part: str) -> dict[str, list[str]]:
            return {u: [digests[p] for p in getattr(self.splits[u], part)] for u in self.users}

        return DataInfo(users=list(self.users), gallery=[digests[p] for p in gallery], gallery_labels=labels,
                        probe=of("probe"), fit=of("fit"), user_gallery=of("gallery"))


def select_identities(suite: Suite, ds: Dataset) -> tuple[list[str], list[str]]:
    """(users, every selected identity): users drawn among those with enough photos, then the others."""
    rng = np.random.default_rng(suite.split.seed)
    names = sorted(ds.identities)
    eligible = [n for n in names if len(ds.identities[n]) >= suite.min_user_photos]
    wanted = len(eligible) if suite.users == "all" else suite.users
    first = suite.draw * wanted  # disjoint draws take consecutive blocks of one seeded order
    if len(eligible) < first + wanted or not eligible:
        raise ValueError(f"suite '{suite.name}' wants {suite.users} users (draw {suite.draw}) with >= "
                         f"{suite.min_user_photos} photos; {ds.root} has {len(eligible)}")
    users = sorted(rng.permutation(eligible)[first:first + wanted].tolist())
    others = [n for n in rng.permutation(names).tolist() if n not in users]
    if suite.gallery_identities is not None:
        others = others[: max(0, suite.gallery_identities - len(users))]
    return users, sorted(users + others)


def listing(suite: Suite, source: Path | Dataset) -> Dataset:
    """The suite's identities with enough photos for a gallery, from a listing already made
    (``bench.run.assembly.DataSource.dataset``) or from the folders under a data root."""
    if isinstance(source, Dataset):
        return source.at_least(suite.min_gallery_photos)
    return load_identity_folders(source, suite.dataset, min_photos=suite.min_gallery_photos)


def split_files(suite: Suite, source: Path | Dataset,
                skip: Callable[[str, str], None]) -> tuple[Dataset, list[str], dict[str, IdentitySplit]]:
    """Load, select and split file lists (nothing aligned yet): the dataset, the users, each identity's split."""
    ds = listing(suite, source)
    for item, reason in {**ds.unreadable, **ds.too_few}.items():  # recorded before users and splits are drawn
        skip(item, reason)
    users, selected = select_identities(suite, ds)
    splits: dict[str, IdentitySplit] = {}
    for ident in selected:
        try:
            splits[ident] = split_identity(ident, ds.identities[ident], suite.split)
        except DataError as exc:
            skip(ident, str(exc))
    return ds, users, splits


def describe_files(suite: Suite, source: Path | Dataset) -> DataInfo:
    """The planner's description of the data from file lists alone (paths stand in for digests): what a dry run
    plans on, before any photo is aligned. A photo that would fail alignment is still counted."""
    _, users, splits = split_files(suite, source, lambda item, reason: None)
    gallery = [(str(p), ident) for ident, sp in sorted(splits.items()) for p in sp.gallery]

    def of(part: str) -> dict[str, list[str]]:
        return {u: [str(p) for p in getattr(splits[u], part)] for u in users if u in splits}

    return DataInfo(users=[u for u in users if u in splits], gallery=[p for p, _ in gallery],
                    gallery_labels=[i for _, i in gallery], probe=of("probe"), fit=of("fit"),
                    user_gallery=of("gallery"))


def prepare_data(suite: Suite, source: Path | Dataset, aligner, skip: Callable[[str, str], None],
                 reporter: Reporter) -> Prepared:
    """Load, select, split and align; ``skip(item, reason)`` records what is left out."""
    ds, users, splits = split_files(suite, source, skip)
    for item, reason in ds.unreadable.items():
        reporter.message(f"[yellow]skipped[/yellow] {item}: {reason}")
    needed = {ident: sp.gallery + sp.probe + sp.fit if ident in users else sp.gallery
              for ident, sp in splits.items()}
    # where a photo holds several faces, the one that is the folder's person is taken (or the photo skipped)
    chooser = IdentityFaces(aligner, embed=recogniser_embed(IdentityCheck().target, aligner.device))
    reporter.phase("align faces", sum(map(len, needed.values())))
    canvases, digests, chosen = {}, {}, {}
    for ident, photos in needed.items():
        faces, skipped = chooser.align(ident, photos, others=ds.identities[ident], progress=reporter.advance)
        for p, reason in skipped.items():
            skip(str(p), reason)
            reporter.message(f"[yellow]skipped[/yellow] {p}: {reason}")
        for p, face in faces.items():
            canvases[p], digests[p], chosen[p] = face.canvas, face.key, face
    for ident in list(splits):
        sp = splits[ident]
        sp.gallery, sp.probe, sp.fit = ([p for p in part if p in canvases] for part in (sp.gallery, sp.probe, sp.fit))
        if not sp.gallery or (ident in users and not (sp.probe and sp.fit)):
            skip(ident, "no usable gallery photo" if not sp.gallery else "no usable probe or fit photo")
            del splits[ident]
    users = [u for u in users if u in splits]
    if not users:
        raise ValueError("no protected user is left after alignment; see the skipped items in the store")
    return Prepared(ds, users, splits, canvases, digests, chosen)


def check_run_request(suite: Any, run_dir: Path, data_root: str | None, device: str,
                      threads: int | None) -> DataSource:
    """Everything about a run that can be checked without compute: device, threads, the output folder, the
    data root and whether it holds enough identities for the suite. Raises :class:`UsageError`; returns the
    data root resolved and its dataset listed (what the run then prepares from)."""
    check_device(device)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"--threads {threads!r} is out of range; allowed: --threads >= 1")
    check_output_folder(run_dir)
    try:
        source = locate_data(data_root, suite.dataset)
        dataset = source.dataset.at_least(suite.min_gallery_photos)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    eligible = sum(len(photos) >= suite.min_user_photos for photos in dataset.identities.values())
    needed = 1 if suite.users == "all" else suite.users * (suite.draw + 1)
    if eligible < needed:
        raise UsageError(
            f"users={suite.users}{f' (draw {suite.draw})' if suite.draw else ''} is out of range for {dataset.root}: "
            f"it has {eligible} "
            f"identities with >= {suite.min_user_photos} photos; allowed: "
            + (f"1 <= users <= {eligible}" if suite.draw == 0 else f"users x draws <= {eligible}") if eligible else
            f"{dataset.root} has no identity with >= {suite.min_user_photos} photos, as a protected user needs"
        )
    return source


def recogniser_embed(target: str, device) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Embeddings by the registered recogniser ``target``, created on first use: most photos hold one face, and
    a run that never meets a photo with several loads no model for it."""
    loaded = []

    def embed(canvases: list[np.ndarray]) -> np.ndarray:
        if not loaded:
            model = TARGETS.create(target, device=device)
            model.load()
            loaded.append(model)
        with torch.no_grad():
            return loaded[0].embed(canvases_to_tensor(canvases).to(device)).cpu().numpy()

    return embed


__all__ = ["Prepared", "check_run_request", "prepare_data", "select_identities", "split_files", "describe_files",
           "recogniser_embed"]
