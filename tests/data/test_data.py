"""Data loading on the shared LFW copy and the embedded subset; splits; data-root resolution."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
from PIL import Image

from bench.core.paths import embedded_data_root
from bench.data.datasets import DataError, SplitSpec, load_identity_folders, resolve_data_root, split_identity
from bench.data.decoding import FaceError
from bench.data.faces import Aligner


def test_shared_lfw_loads_in_standard_layout_without_errata(shared_data):
    ds = load_identity_folders(shared_data, "lfw")
    assert len(ds.identities) == 500
    assert ds.num_photos == 5794 - 2  # the two errata photos present in this copy are left out
    assert "Michael_Schumacher/Michael_Schumacher_0008.jpg" in ds.excluded
    assert all(p.parent.name == name for name, photos in ds.identities.items() for p in photos)


def test_plain_identity_folders_and_bad_roots(tmp_path):
    for name in ("Ann_A", "Bob_B"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (20, 20)).save(tmp_path / name / f"{name}_{i:04d}.jpg")
    ds = load_identity_folders(tmp_path, "lfw")
    assert sorted(ds.identities) == ["Ann_A", "Bob_B"]
    with pytest.raises(DataError, match=r"has 10\+ photos"):
        load_identity_folders(tmp_path, "lfw", min_photos=10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="expected"):
        load_identity_folders(tmp_path / "empty", "lfw")
    with pytest.raises(DataError, match="not a folder"):
        resolve_data_root(tmp_path / "missing")


def test_data_root_precedence(monkeypatch, tmp_path):
    import bench.data.datasets

    assert resolve_data_root(str(tmp_path)) == (tmp_path, "--data-root")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    assert resolve_data_root(None) == (tmp_path, "BENCH_DATA")
    monkeypatch.delenv("BENCH_DATA")
    shared = tmp_path / "shared" / "data"
    monkeypatch.setattr(bench.data.datasets, "shared_data_candidates", lambda: [tmp_path / "nowhere", shared])
    assert resolve_data_root(None) == (embedded_data_root(), "embedded LFW subset")
    (shared / "lfw").mkdir(parents=True)
    assert resolve_data_root(None) == (shared, "../shared/data")


def test_embedded_subset_is_small_verified_and_credited():
    root = embedded_data_root()
    ds = load_identity_folders(root, "lfw")
    assert len(ds.identities) == 56 and ds.num_photos == 421
    sizes = sorted(len(p) for p in ds.identities.values())
    # users with a real gallery / probe / fit split, and 40+ small identities for the targeted methods' bank
    assert sum(n >= 20 for n in sizes) == 12 and sum(n <= 5 for n in sizes) == 44
    total = 0
    with open(root / "lfw" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        data = (root / "lfw" / "images" / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == int(row["bytes"])
        total += len(data)
    assert len(rows) == ds.num_photos and total < 5_000_000
    assert "Labeled Faces in the Wild" in (root / "lfw" / "SOURCES.md").read_text()


def test_split_is_deterministic_disjoint_and_covers_all(lfw_root):
    photos = load_identity_folders(lfw_root, "lfw").identities["Colin_Powell"]
    spec = SplitSpec(gallery_fraction=0.2, probe_fraction=0.1, seed=2023)
    a, b = split_identity("Colin_Powell", photos, spec), split_identity("Colin_Powell", photos, spec)
    assert a == b
    parts = [set(a.gallery), set(a.probe), set(a.fit)]
    assert sum(map(len, parts)) == len(photos) and set.union(*parts) == set(photos)
    assert len(a.gallery) == round(0.2 * len(photos)) and len(a.probe) == round(0.1 * len(photos))
    other = split_identity("Colin_Powell", photos, SplitSpec(seed=7))
    assert other.probe != a.probe
    with pytest.raises(DataError, match="at least 3"):
        split_identity("x", photos[:2], spec)


def test_alignment_puts_landmarks_on_the_template_and_caches(shared_data, tmp_path):
    from bench.data.canvas import CANVAS_TEMPLATE

    aligner = Aligner(cache_dir=tmp_path)
    face = aligner.align(shared_data / "wild" / "person_a_2.jpg")
    assert face.canvas.shape == (224, 224, 3) and face.canvas.dtype == np.uint8
    mapped = face.landmarks @ face.matrix[:, :2].T + face.matrix[:, 2]
    assert np.abs(mapped - CANVAS_TEMPLATE).max() < 8  # five points, one similarity: small residual
    again = aligner.align(shared_data / "wild" / "person_a_2.jpg")
    assert np.array_equal(again.canvas, face.canvas)
    assert len(list(tmp_path.rglob("*.npz"))) == 1


def test_corrupt_and_faceless_photos_give_clear_errors(tmp_path):
    aligner = Aligner(cache_dir=tmp_path / "cache")
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(FaceError, match="cannot read image"):
        aligner.align(bad)
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (160, 160), (128, 128, 128)).save(blank)
    with pytest.raises(FaceError, match="no face"):
        aligner.align(blank)
    with pytest.raises(FaceError, match="cached result"):  # remembered, not re-detected
        aligner.align(blank)


def test_a_suite_can_take_every_eligible_identity_as_a_user(tmp_path):
    from bench.core.validation import UsageError
    from bench.data.datasets import load_identity_folders
    from bench.run.prepare import select_identities
    from bench.run.suites import get_suite

    suite = get_suite("smoke").with_overrides(users="all", gallery_identities=None)
    dataset = load_identity_folders(embedded_data_root(), "lfw", min_photos=suite.min_gallery_photos)
    eligible = sorted(n for n, p in dataset.identities.items() if len(p) >= suite.min_user_photos)
    users, selected = select_identities(suite, dataset)
    assert users == eligible and len(users) >= 10 and set(users) <= set(selected)
    with pytest.raises(UsageError, match="users"):
        get_suite("smoke").with_overrides(users="many")


def test_disjoint_draws_of_users_share_no_one():
    from bench.core.validation import UsageError
    from bench.data.datasets import load_identity_folders
    from bench.run.prepare import select_identities
    from bench.run.suites import get_suite

    suite = get_suite("smoke").with_overrides(users=4)
    dataset = load_identity_folders(embedded_data_root(), "lfw", min_photos=suite.min_gallery_photos)
    draws = [select_identities(suite.with_overrides(draw=k), dataset)[0] for k in range(3)]
    assert all(len(d) == 4 for d in draws) and len(set().union(*draws)) == 12
    assert draws[0] == select_identities(suite, dataset)[0]  # draw 0 is the suite's own users
    with pytest.raises(ValueError, match="draw 3"):
        select_identities(suite.with_overrides(draw=3), dataset)  # 16 users: the subset has 12 eligible
    with pytest.raises(UsageError, match="no other draw"):
        get_suite("smoke").with_overrides(users="all", draw=1)
