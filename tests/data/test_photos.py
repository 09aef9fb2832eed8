"""Odd photos, built from real faces: several people in one photo, EXIF orientation, 16-bit, palette and
transparent PNGs, and a photo far larger than any face needs (an 8000 x 6000 photo)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.progress import Reporter
from bench.data.canvas import CANVAS_TEMPLATE
from bench.data.decoding import decode_photo
from bench.data.faces import Aligner
from bench.data.identity_faces import IdentityCheck, IdentityFaces
from bench.run.prepare import prepare_data, recogniser_embed
from bench.run.store import RunStore
from bench.run.suites import get_suite

USER = "Abdullah_Gul"
STRANGERS = ["Aaron_Peirsol", "Alejandro_Toledo", "Ana_Guevara", "Antonio_Palocci"]


def lfw_photo(shared_data: Path, name: str, index: int = 0) -> Path:
    return sorted((shared_data / "lfw" / "images" / name).glob("*.jpg"))[index]


def grid(paths: list[Path], out: Path) -> Path:
    """A 2 x 2 grid of four 250 x 250 LFW photos (one face each, near each tile's centre)."""
    sheet = Image.new("RGB", (500, 500))
    for i, path in enumerate(paths):
        sheet.paste(Image.open(path).convert("RGB"), ((i % 2) * 250, (i // 2) * 250))
    sheet.save(out, quality=95)
    return out


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_a_photo_of_four_other_people_is_skipped_with_the_reason(shared_data, tmp_path):
    user_photos = sorted((shared_data / "lfw" / "images" / USER).glob("*.jpg"))
    sheet = grid([lfw_photo(shared_data, n) for n in STRANGERS], tmp_path / f"{USER}_9999.jpg")
    assert len(Aligner().faces(sheet)) == 4  # four confident faces: the old rule took one of them
    chosen, skipped = IdentityFaces(Aligner(), embed=recogniser_embed(IdentityCheck().target, "cpu")).align(USER, [*user_photos, sheet])
    assert sheet not in chosen and "4 faces, none matches Abdullah_Gul's other photos" in skipped[sheet]
    assert set(chosen) == set(user_photos)  # the user's own multi-face photos keep their face


def test_the_identitys_face_is_taken_wherever_it_sits_in_the_photo(shared_data, tmp_path):
    user_photos = sorted((shared_data / "lfw" / "images" / USER).glob("*.jpg"))
    tiles = [lfw_photo(shared_data, n) for n in STRANGERS[:3]]
    tiles.insert(3, user_photos[-1])  # bottom right
    sheet = grid(tiles, tmp_path / "sheet.jpg")
    chosen, skipped = IdentityFaces(Aligner(), embed=recogniser_embed(IdentityCheck().target, "cpu")).align(USER, [*user_photos[:-1], sheet])
    assert not skipped
    x0, y0, x1, y1 = chosen[sheet].box
    assert (x0 + x1) / 2 > 250 and (y0 + y1) / 2 > 250


def test_identity_choice_agrees_with_lfw_labels_on_lfw_photos_with_several_faces(shared_data):
    """On LFW the labelled face is the centre one: the identity check must pick it wherever it is sure."""
    aligner = Aligner()
    chooser = IdentityFaces(aligner, embed=recogniser_embed(IdentityCheck().target, aligner.device))
    checked = 0
    for name in [USER]:  # 5 of its 19 photos hold several faces
        photos = sorted((shared_data / "lfw" / "images" / name).glob("*.jpg"))
        chosen, _ = chooser.align(name, photos)
        for path, face in chosen.items():
            if face.faces_in_photo > 1:
                checked += 1
                assert face.key.endswith(":0"), f"{path}: identity check took face {face.key[-1]}, not the centre"
    assert checked >= 5


def test_exif_orientation_is_applied_before_detection(shared_data, tmp_path):
    upright = Image.open(shared_data / "wild" / "person_b_1.jpg")
    plain, sideways = tmp_path / "plain.jpg", tmp_path / "sideways.jpg"
    upright.save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # the stored pixels must turn 90 degrees clockwise to be seen upright
    upright.rotate(90, expand=True).save(sideways, quality=95, exif=exif)
    assert Image.open(sideways).size == upright.size[::-1]
    aligner = Aligner(cache_dir=tmp_path / "cache")
    a, b = aligner.align(plain), aligner.align(sideways)
    assert decode_photo(sideways)[0].shape == decode_photo(plain)[0].shape
    # the same face, upright (two JPEG encodings apart); read sideways it would come out turned and zoomed
    assert mean_abs(a.canvas, b.canvas) < 6 and np.abs(a.landmarks - b.landmarks).max() < 4


def test_16_bit_palette_and_transparent_pngs_convert_correctly(shared_data, tmp_path):
    source = Image.open(shared_data / "wild" / "person_a_2.jpg")
    grey = np.asarray(source.convert("L"))
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    source.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    rgba = source.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(tmp_path / "rgba.png")
    assert np.array_equal(decode_photo(tmp_path / "grey16.png")[0], decode_photo(tmp_path / "grey8.png")[0])
    aligner = Aligner(cache_dir=tmp_path / "cache")
    reference = aligner.align(shared_data / "wild" / "person_a_2.jpg")
    grey_ref = aligner.align(tmp_path / "grey8.png")
    assert mean_abs(aligner.align(tmp_path / "grey16.png").canvas, grey_ref.canvas) < 1
    for name in ("palette.png", "rgba.png"):
        assert mean_abs(aligner.align(tmp_path / name).canvas, reference.canvas) < 6, name


HUGE_SCRIPT = r"""
import json, resource, sys, time
import torch
from bench.data.decoding import decode_photo
from bench.data.detectors import MTCNNDetector
from bench.data.faces import Aligner
torch.set_num_threads(1)  # CPU seconds, not wall-clock, are measured: other load on the machine does not count
MTCNNDetector("cpu")  # the detector's own memory is not the photo's
before = resource.getrusage(resource.RUSAGE_SELF)
face = Aligner(cache_dir=sys.argv[2]).align(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF)
seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
rgb, scale = decode_photo(sys.argv[1], 2048)
print(json.dumps({"seconds": seconds, "peak_mb": (after.ru_maxrss - before.ru_maxrss) / 1024,
                  "landmarks": face.landmarks.tolist(), "matrix": face.matrix.tolist(), "decoded": list(rgb.shape),
                  "scale": scale}))
"""


def test_an_8000_by_6000_photo_is_decoded_downscaled_with_bounded_memory_and_time(shared_data, tmp_path):
    face = Image.open(shared_data / "wild" / "person_b_1.jpg").resize((2864, 3600), Image.Resampling.BICUBIC)
    photo = Image.new("RGB", (8000, 6000), (120, 130, 140))
    photo.paste(face, (4000, 1200))
    huge = tmp_path / "huge.jpg"
    photo.save(huge, quality=90)
    del photo, face
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", HUGE_SCRIPT, str(huge), str(tmp_path / "cache")], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    print(f"8000 x 6000 photo: {result['seconds']:.1f} CPU s, peak memory +{result['peak_mb']:.0f} MB")
    assert max(result["decoded"]) <= 2048 and result["scale"][0] < 0.3
    # decoding at full size took 15.5 CPU s (one thread) and +2.4 GB; decoding reduced, 1.1 CPU s and +0.2 GB. The full-size pixels alone are 144 MB.
    assert result["peak_mb"] < 400 and result["seconds"] < 8
    landmarks, matrix = np.array(result["landmarks"]), np.array(result["matrix"])
    assert (landmarks[:, 0] > 4000).all() and (landmarks[:, 1] > 1200).all()  # full-size photo pixels
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - CANVAS_TEMPLATE).max() < 8


def test_runs_record_too_few_photos_and_photos_of_other_people_in_skipped(shared_data, tmp_path):
    images = tmp_path / "data" / "lfw" / "images"
    for name, count in ((USER, 12), ("Adrien_Brody", 4), ("Alvaro_Uribe", 4), ("Andre_Agassi", 4),
                        ("Ana_Guevara", 2)):
        (images / name).mkdir(parents=True)
        for path in sorted((shared_data / "lfw" / "images" / name).glob("*.jpg"))[:count]:
            shutil.copy(path, images / name / path.name)
    sheet = grid([lfw_photo(shared_data, n) for n in STRANGERS], images / USER / f"{USER}_9999.jpg")
    suite = get_suite("smoke").with_overrides(users=1, gallery_identities=4, min_user_photos=10)
    store = RunStore(tmp_path / "run")
    data = prepare_data(suite, tmp_path / "data", Aligner(), store.skip, Reporter())
    skipped = store.skipped()
    assert skipped["Ana_Guevara"] == "2 usable photo(s); at least 3 needed"
    assert "none matches Abdullah_Gul's other photos" in skipped[str(sheet)]
    assert sheet not in {p for sp in data.splits.values() for p in sp.gallery + sp.probe + sp.fit}
