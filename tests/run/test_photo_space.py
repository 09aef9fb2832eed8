"""Photo space on real faces (embedded LFW subset, SFace, YuNet): a finished crop-space run re-scored the way an
attacker who scrapes whole photos sees it, with nothing protected again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.paths import embedded_data_root
from bench.data.canvas import from_uint8
from bench.data.faces import Aligner
from bench.measures.psr import UserOutcome
from bench.report import board_merge, leaderboard, tables
from bench.run import photo_space
from bench.run.runner import Reporter, Runner
from bench.run.suites import get_suite


def tiny_suite(**changes):
    return get_suite("smoke").with_overrides(users=2, gallery_identities=6, method_overrides={"pgd": {"steps": 2}},
                                             adversaries=("none", "jpeg-75"), **changes)


class Executed(Reporter):
    def __init__(self):
        self.in_tasks, self.labels = False, []

    def phase(self, name, total):
        self.in_tasks = name == "tasks"

    def advance(self, label=""):
        if self.in_tasks:
            self.labels.append(label)

    def message(self, text):
        pass


def rescore(crop_dir: Path, run_dir: Path, **changes) -> list[str]:
    """Copy a finished crop-space run and run it again in photo space; the labels of the tasks that ran."""
    shutil.copytree(crop_dir, run_dir)
    seen = Executed()
    Runner(tiny_suite(space="photo", **changes), run_dir, data_root=str(embedded_data_root()), reporter=seen).run()
    return seen.labels


@pytest.fixture(scope="module")
def crop_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("photospace") / "crop"
    Runner(tiny_suite(), run_dir, data_root=str(embedded_data_root()), reporter=Executed()).run()
    return run_dir


@pytest.fixture(scope="module")
def photo_run(crop_run, tmp_path_factory) -> tuple[Path, list[str]]:
    run_dir = tmp_path_factory.mktemp("photospace") / "photo"
    return run_dir, rescore(crop_run, run_dir)


def test_rescoring_in_photo_space_reuses_the_protected_photos(photo_run):
    labels = photo_run[1]
    assert labels and all(label.startswith(("photos/", "eval/")) for label in labels), labels
    assert {label for label in labels if label.startswith("photos/")} == {
        f"photos/pgd/{user}/0" for user in leaderboard.build_runs([photo_run[0]])["run"]["users"]}


def test_photo_space_scores_every_query_and_counts_the_missed_apart(crop_run, photo_run):
    crop, photo = leaderboard.build_runs([crop_run]), leaderboard.build_runs([photo_run[0]])
    entry = photo["entries"][0]
    assert entry["space"] == "photo" and crop["entries"][0]["space"] == "crop"
    for adversary in ("none", "jpeg-75"):
        cell = entry["psr"]["sface"][adversary]
        assert isinstance(cell["missed"], int) and 0 <= cell["missed"] <= entry["probes"]
        assert 0.0 <= cell["top1"] <= 1.0
        assert "missed" not in crop["entries"][0]["psr"]["sface"][adversary]
    # a missed photo counts as protected: PSR is at least the missed share
    cell = entry["psr"]["sface"]["none"]
    assert cell["top1"] >= cell["missed"] / entry["probes"] - 1e-9
    assert photo["clean"]["sface"]["missed"] >= 0 and "missed" not in crop["clean"]["sface"]
    # whole-photo quality: the photo outside the face is untouched, so it is closer to the original than the face
    assert entry["ssim"] < entry["photo_ssim"] <= 1.0 and entry["photo_psnr"] > entry["psnr"]
    assert 0.0 <= entry["photo_lpips"] < 1.0 and crop["entries"][0]["photo_ssim"] is None


def test_the_leaderboard_states_the_space_and_refuses_to_merge_spaces(crop_run, photo_run):
    crop, photo = leaderboard.build_runs([crop_run]), leaderboard.build_runs([photo_run[0]])
    assert tables.flat_frame(photo)["space"].tolist() == ["photo"]
    assert tables.flat_frame(crop)["space"].tolist() == ["crop"]
    assert "missed[sface|none]" in tables.flat_frame(photo).columns
    assert "missed[sface|none]" not in tables.flat_frame(crop).columns
    md = tables.to_markdown(photo)
    assert "Space: photo: each protected face is put back" in md and "quality 90" in md
    assert "Missed (photos the attacker's detector found no face in" in md and "| photo SSIM |" in md
    crop_md = tables.to_markdown(crop)
    assert "Space: crop:" in crop_md and "photo SSIM" not in crop_md
    with pytest.raises(ValueError, match="differ in space"):
        board_merge.merge([crop, photo])


@pytest.mark.slow  # a third run (about 10 s on an idle machine); the unit tests below cover the counting too
def test_a_face_the_attacker_misses_counts_as_protected(crop_run, tmp_path, monkeypatch):
    """No detected face overlaps the protected one (an overlap above 1 can never be met): every photo is missed,
    every query protected, and the misses are counted, for protected and clean photos alike."""
    monkeypatch.setattr(photo_space, "MIN_OVERLAP", 1.01)
    rescore(crop_run, tmp_path / "blind", photo_jpeg_quality=80)
    board = leaderboard.build_runs([tmp_path / "blind"])
    entry = board["entries"][0]
    for adversary in ("none", "jpeg-75"):
        cell = entry["psr"]["sface"][adversary]
        assert cell["missed"] == entry["probes"] and cell["top1"] == 1.0 and cell["top5"] == 1.0
    assert board["clean"]["sface"] == {"top1_accuracy": 0.0, "top5_accuracy": 0.0, "missed": entry["probes"]}


def lfw_photo() -> Path:
    return sorted((embedded_data_root() / "lfw" / "images").glob("*/*.jpg"))[0]


def test_the_attacker_finds_and_aligns_the_face_the_harness_aligned(tmp_path, sface):
    face = Aligner(cache_dir=tmp_path).align(lfw_photo())
    from bench.data.decoding import read_rgb

    original = read_rgb(lfw_photo())
    # nothing changed on the canvas: the posted photo is the original, pixel for pixel
    assert np.array_equal(photo_space.published_photo(original, face.canvas, face.canvas, face.matrix), original)
    view = photo_space.AttackerView("yunet")
    posted = photo_space.jpeg_bytes(original, 90)
    crop = view.crop(posted, face.box)
    assert crop is not None and crop.shape == face.canvas.shape
    with torch.no_grad():
        emb = sface.embed(from_uint8(torch.from_numpy(np.stack([crop, face.canvas])).permute(0, 3, 1, 2)))
    assert float(emb[0] @ emb[1]) > 0.8  # YuNet's alignment of the JPEG is the same face as MTCNN's canvas
    # the face painted over: the attacker's detector finds nothing there
    blank = original.copy()
    x0, y0, x1, y1 = face.box.astype(int)
    blank[max(0, y0):y1, max(0, x0):x1] = 128
    crops, missed = view.crops([photo_space.jpeg_bytes(blank, 90), posted], [face.box, face.box])
    assert missed == 1 and len(crops) == 1


def test_missed_queries_count_as_protected():
    found = UserOutcome("ann", 3, {"top1": 1 / 3, "far1e-3": 0.0})
    assert photo_space.with_missed(found, 3, 1).psr == pytest.approx({"top1": 0.5, "far1e-3": 0.25})
    assert photo_space.with_missed(found, 3, 1).queries == 4
    assert photo_space.with_missed(found, 0, 2).psr == {"top1": 1.0, "far1e-3": 1.0}
    assert photo_space.with_missed(found, 3, 0) is found
