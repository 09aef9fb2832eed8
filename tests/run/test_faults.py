"""Faults injected into a real smoke run (the built-in LFW subset, PGD at 2 steps, one thread): each ends with one
line that names what was wrong, and either the correct leaderboard or none.

One run, on a copy of the built-in data holding unreadable entries, is shared by every test (a module fixture);
each test copies its folder and damages the copy: an artifact overwritten, cut short or removed, a store with a
garbage header or a page of garbage, a failed or missing cell, a full disk, a folder that cannot be written, a
store from before artifacts were hashed. A full disk and a refused write are made real by the kernel: the
artifact's temporary file is a link to ``/dev/full`` or into ``/sys``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pandas
import pytest
import torch
from PIL import Image
from test_resume import bench_run, comparable, query

from bench.core.paths import embedded_data_root

REPO = Path(__file__).resolve().parents[2]


def finished(proc, code: int = 0) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    return out


def lines_with(out: str, text: str) -> list[str]:
    return [line for line in out.splitlines() if text in line]


@pytest.fixture(scope="module")
def faulty_data(tmp_path_factory) -> Path:
    """The built-in data, plus entries no photo can be read from: a symlink loop in one identity folder, a folder
    named like a photo in another, an unreadable file in a third (when not running as root, who reads anything)."""
    root = tmp_path_factory.mktemp("data") / "embedded"
    shutil.copytree(embedded_data_root(), root)
    images = root / "lfw" / "images"
    os.symlink("b.jpg", images / "Colin_Powell" / "a.jpg")
    os.symlink("a.jpg", images / "Colin_Powell" / "b.jpg")
    (images / "Rudolph_Giuliani" / "Rudolph_Giuliani_0000.jpg").mkdir()
    if os.geteuid() != 0:
        locked = images / "George_W_Bush" / "George_W_Bush_0000.jpg"
        shutil.copy(next((images / "George_W_Bush").glob("*.jpg")), locked)
        locked.chmod(0)
    return root


@pytest.fixture(scope="module")
def reference(faulty_data, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    out = finished(bench_run(run_dir, "--data-root", str(faulty_data)))
    (run_dir.parent / "output.txt").write_text(out)
    return run_dir


def rerun(run_dir: Path, data: Path, code: int = 0) -> str:
    return finished(bench_run(run_dir, "--data-root", str(data)), code)


def copy_run(reference: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir, ignore=shutil.ignore_patterns("run.lock"))
    return run_dir


def protect_artifact(run_dir: Path) -> tuple[str, Path]:
    (key,), = query(run_dir, "SELECT key FROM tasks WHERE kind = 'protect' ORDER BY label LIMIT 1")
    return key, run_dir / "artifacts" / f"{key}.pt"


def starts(run_dir: Path) -> dict[str, int]:
    return dict(query(run_dir, "SELECT label, COUNT(*) FROM attempts GROUP BY label"))


def test_unreadable_photos_are_skipped_before_users_and_splits_are_drawn(reference, faulty_data):
    from bench.run.prepare import split_files
    from bench.run.suites import SUITES

    skipped = dict(query(reference, "SELECT item, reason FROM skipped"))
    images = faulty_data / "lfw" / "images"
    assert "symlink loop" in skipped[str(images / "Colin_Powell" / "a.jpg")]
    out = (reference.parent / "output.txt").read_text()
    assert len(lines_with(out, f"skipped {images / 'Colin_Powell' / 'a.jpg'}: cannot be read")) == 1, out
    assert "folder named like a photo" in skipped[str(images / "Rudolph_Giuliani" / "Rudolph_Giuliani_0000.jpg")]
    if os.geteuid() != 0:
        assert "permission denied" in skipped[str(images / "George_W_Bush" / "George_W_Bush_0000.jpg")]
    suite = SUITES["smoke"].with_overrides(users=2, gallery_identities=6)
    clean = split_files(suite, embedded_data_root(), lambda *_: None)
    faulty = split_files(suite, faulty_data, lambda *_: None)
    assert faulty[1] == clean[1]  # the same users, and every identity split as on clean data
    assert {i: [p.name for p in s.gallery + s.probe + s.fit] for i, s in faulty[2].items()} == \
        {i: [p.name for p in s.gallery + s.probe + s.fit] for i, s in clean[2].items()}
    assert json.loads((reference / "leaderboard.json").read_text())["entries"][0]["status"] == "ok"


def test_damaged_artifacts_recompute_their_tasks_and_only_what_reads_them(reference, faulty_data, tmp_path):
    run_dir = copy_run(reference, tmp_path)
    (zeroed, _), (cut, _) = [(run_dir / "artifacts" / f"{key}.pt", label) for key, label in
                             query(run_dir, "SELECT key, label FROM tasks WHERE kind = 'protect' ORDER BY label")]
    # a valid file of the same arrays, all zero; and one cut short
    torch.save({k: torch.zeros_like(v) for k, v in torch.load(zeroed, weights_only=True).items()}, zeroed)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    before = starts(run_dir)
    out = rerun(run_dir, faulty_data)
    for path in (zeroed, cut):
        named = lines_with(out, str(path))
        assert len(named) == 1 and "does not match the SHA-256 recorded" in named[0], out
    assert comparable(run_dir) == comparable(reference)
    again = {label for label, n in starts(run_dir).items() if n > before.get(label, 0)}
    assert again == {label for (label,) in query(run_dir, "SELECT label FROM tasks")} - {
        "clean/sface", "eval/clean/sface"}, again


def test_a_store_from_before_artifact_hashes_is_migrated(reference, faulty_data, tmp_path):
    """Old stores get the column on open: artifacts that load are adopted as found, one that does not is
    computed again with what reads it."""
    run_dir = copy_run(reference, tmp_path)
    with sqlite3.connect(run_dir / "store.sqlite") as db:
        db.execute("ALTER TABLE tasks DROP COLUMN artifact_sha256")
    _, path = protect_artifact(run_dir)
    path.write_bytes(path.read_bytes()[:1000])
    out = rerun(run_dir, faulty_data)
    assert "3 of 6 tasks already done" in out
    assert comparable(run_dir) == comparable(reference)
    assert query(run_dir, "SELECT COUNT(*) FROM tasks WHERE artifact_sha256 IS NOT NULL")[0][0] == 3


@pytest.mark.parametrize("damage", ["header", "page"])
def test_a_damaged_store_is_refused_in_one_line(reference, faulty_data, tmp_path, damage):
    run_dir = copy_run(reference, tmp_path)
    store = run_dir / "store.sqlite"
    data = bytearray(store.read_bytes())
    at = 0 if damage == "header" else 4096 * (len(data) // 4096 // 2)
    data[at:at + 4096] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    store.write_bytes(bytes(data))
    out = rerun(run_dir, faulty_data, code=2)
    damaged = lines_with(out, "is damaged")
    assert len(damaged) == 1 and "artifact file(s)" in damaged[0] and "mv " in damaged[0], out
    from bench.cli import main

    assert main(["leaderboard", str(run_dir)]) == 2


@pytest.mark.parametrize("fault", ["failed", "missing"])
def test_failed_or_missing_cells_are_marked_in_every_export(reference, tmp_path, fault):
    from bench.cli import main

    run_dir = copy_run(reference, tmp_path)
    with sqlite3.connect(run_dir / "store.sqlite") as db:
        if fault == "failed":
            db.execute("UPDATE tasks SET status = 'failed', error = 'RuntimeError: injected' "
                       "WHERE label = 'eval/pgd/jpeg-75/sface'")
        else:
            db.execute("DELETE FROM tasks WHERE label = 'eval/pgd/jpeg-75/sface'")
    assert main(["leaderboard", str(run_dir), "--format", "json", "csv", "md", "html"]) == 0
    entry = json.loads((run_dir / "leaderboard.json").read_text())["entries"][0]
    assert entry["status"] == "incomplete" and "rank" not in entry and "sface|jpeg-75" in entry["failed_cells"]
    (row,) = pandas.read_csv(run_dir / "leaderboard.csv").to_dict("records")
    assert row["status"] == "incomplete" and row["failed_cells"] == "sface|jpeg-75"
    md = (run_dir / "leaderboard.md").read_text()
    # a cell whose task failed says so; one whose task has not run yet (a run under way) is pending, not failed
    shown = "failed" if fault == "failed" else "pending"
    assert entry["psr"]["sface"]["jpeg-75"]["status"] == shown
    assert "pgd† (incomplete)" in md and "(incomplete: 1 of 2 cells)" in md and f"/ {shown}" in md
    assert ("/ pending" if fault == "failed" else "/ failed") not in md
    html = (run_dir / "report.html").read_text()
    assert "(incomplete: 1 of 2 cells)" in html and "status-incomplete" in html and f">{shown}<" in html


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to fill a disk")
def test_a_missing_artifact_on_a_full_disk_ends_in_one_line_and_the_rerun_finishes(reference, faulty_data,
                                                                                    tmp_path):
    run_dir = copy_run(reference, tmp_path)
    key, path = protect_artifact(run_dir)
    path.unlink()
    part = path.with_name(path.name + ".part")
    part.symlink_to("/dev/full")  # the artifact's write goes to a device that is always full
    before = starts(run_dir)
    out = rerun(run_dir, faulty_data, code=1)
    assert len(lines_with(out, f"artifact {path} is missing")) == 1, out
    full = lines_with(out, "no space left in")
    assert len(full) == 1 and str(run_dir / "artifacts") in full[0] and "the write needs 0.9 MB" in full[0], out
    part.unlink()
    rerun(run_dir, faulty_data)
    assert comparable(run_dir) == comparable(reference)
    (label,), = query(run_dir, f"SELECT label FROM tasks WHERE key = '{key}'")
    again = {label for label, n in starts(run_dir).items() if n > before.get(label, 0)}
    assert again == {label, "eval/pgd/none/sface", "eval/pgd/jpeg-75/sface"}, again


def test_a_write_that_is_refused_ends_in_one_line(reference, faulty_data, tmp_path):
    run_dir = copy_run(reference, tmp_path)
    _, path = protect_artifact(run_dir)
    path.unlink()
    # the artifact's write goes where the kernel refuses to create a file, even for root (sysfs)
    path.with_name(path.name + ".part").symlink_to("/sys/cloakbench-refused")
    out = rerun(run_dir, faulty_data, code=1)
    assert len(lines_with(out, f"permission denied writing in {path.parent}")) == 1, out


def test_orphans_of_killed_alignments_are_removed(tmp_path):
    from bench.data.faces import Aligner, AlignSettings

    folder = tmp_path / AlignSettings().key() / "ab"
    folder.mkdir(parents=True)
    dead, live = folder / "abcd.999999999.tmp.npz", folder / f"abcd.{os.getpid()}.tmp.npz"
    for path in (dead, live):
        path.write_bytes(b"part")
        os.utime(path, (0, os.path.getmtime(path) - 120))
    Aligner(cache_dir=tmp_path)
    assert not dead.exists() and live.exists()


def test_a_decompression_bomb_warning_becomes_one_line(monkeypatch):
    from bench.data.decoding import decode_photo
    from bench.data.photo import load_photo

    photo = next((embedded_data_root() / "lfw" / "images" / "Colin_Powell").glob("*.jpg"))
    with Image.open(photo) as im:
        pixels = im.size[0] * im.size[1]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels * 2 // 3)  # above the warning, below the refusal
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb, _ = decode_photo(photo, 2048, lines.append)
        notes = load_photo(photo).notes
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert len(lines) == 1 and "decompression-bomb limit" in lines[0] and str(photo) in lines[0]
    assert any("decompression-bomb limit" in n for n in notes) and rgb.shape[2] == 3
