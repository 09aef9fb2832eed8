"""Whole photos and `bench protect`: decoding odd files, putting a change back without a seam, matching the
user's face, reusing a saved mask. Photos are real LFW faces from the built-in subset, placed into larger photos
the tests make (so they run on a fresh clone)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bench
from bench.cli import main
from bench.data.canvas import CANVAS_SIZE
from bench.data.photo import align_face, detect_faces, feather_weights, load_photo, put_back, save_photo
from bench.run.maskfile import load_mask, save_mask

EMBEDDED = Path(bench.__file__).parent / "embedded" / "lfw" / "images"


def _people(min_photos: int = 8) -> list[Path]:
    return sorted(d for d in EMBEDDED.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= min_photos)


def _photos(person: Path) -> list[Path]:
    return sorted(person.glob("*.jpg"))


def _big_photo(face: Path, size: tuple[int, int] = (900, 700), scale: float = 2.0) -> np.ndarray:
    """A larger photo: the LFW photo enlarged and placed off-centre on a plain background."""
    im = Image.open(face).convert("RGB")
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    canvas = Image.new("RGB", size, (200, 190, 180))
    canvas.paste(im, (size[0] - im.width - 40, 60))
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def detector():
    from bench.data.detectors import MTCNNDetector

    return MTCNNDetector("cpu")


def test_put_back_puts_the_change_where_the_face_is(detector):
    rgb = _big_photo(_photos(_people()[0])[0])
    faces = detect_faces(rgb, detector)
    assert len(faces) == 1
    canvas, matrix = align_face(rgb, faces[0].landmarks)
    change = np.zeros((CANVAS_SIZE, CANVAS_SIZE, 3), np.float32)
    change[60:164, 60:164] = 8 / 255
    edited = put_back(rgb, change, matrix, feather=12)
    diff = edited.astype(int) - rgb.astype(int)
    # only the face region moved, by about the change (resampled at 2x the canvas scale)
    ys, xs = np.nonzero(np.abs(diff).max(2))
    x0, y0, x1, y1 = faces[0].box
    assert xs.min() >= x0 - 60 and xs.max() <= x1 + 60 and ys.min() >= y0 - 80 and ys.max() <= y1 + 80
    assert np.abs(diff).max() <= 9
    # re-aligning the edited photo recovers the change in the canvas centre
    again, _ = align_face(edited, faces[0].landmarks)
    recovered = (again.astype(int) - canvas.astype(int))[80:144, 80:144]
    assert abs(recovered.mean() - 8) < 1.0


def test_feather_fades_to_zero_at_the_border():
    w = feather_weights(224, 12)
    assert w[0].max() == 0 and w[:, 0].max() == 0 and w[112, 112] == 1
    assert np.all(np.diff(w[112, :13]) >= 0)


def test_odd_files_decode_upright_and_8_bit(tmp_path):
    face = _photos(_people()[0])[0]
    rgb = np.asarray(Image.open(face).convert("RGB"))
    # EXIF orientation 6: stored rotated, shown upright
    stored = Image.fromarray(rgb).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rotated.jpg", exif=exif, quality=98)
    photo = load_photo(tmp_path / "rotated.jpg")
    assert photo.rgb.shape == rgb.shape and np.abs(photo.rgb.astype(int) - rgb).mean() < 4
    assert any("orientation" in n for n in photo.notes)
    # 16-bit grey PNG: not white
    grey8 = np.asarray(Image.fromarray(rgb).convert("L"))
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    photo = load_photo(tmp_path / "grey16.png")
    assert photo.rgb.dtype == np.uint8 and np.abs(photo.rgb[..., 0].astype(int) - grey8).max() <= 1
    # PNG with alpha keeps its alpha on saving
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    photo = load_photo(tmp_path / "alpha.png")
    assert photo.alpha is not None
    out = save_photo(photo, photo.rgb, tmp_path / "out" / "alpha.png")
    assert Image.open(out).mode == "RGBA"
    # CMYK JPEG: RGB out, written as a JPEG
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    photo = load_photo(tmp_path / "cmyk.jpg")
    assert photo.rgb.shape == rgb.shape and any("CMYK" in n for n in photo.notes)
    assert Image.open(save_photo(photo, photo.rgb, tmp_path / "out" / "cmyk.jpg")).mode == "RGB"


def _mask_file(tmp_path: Path, templates: dict) -> Path:
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(1, 3, CANVAS_SIZE, CANVAS_SIZE, generator=gen) * 2 - 1) * 8 / 255
    return save_mask(tmp_path / "mask.npz", mask, {"method": "test-mask", "surrogates": ["sface"],
                                                   "budget": {"linf": 8 / 255}}, templates)


def test_mask_file_round_trip_refuses_other_files(tmp_path):
    path = _mask_file(tmp_path, {"sface": torch.ones(128)})
    saved = load_mask(path)
    assert saved.mask.shape == (1, 3, CANVAS_SIZE, CANVAS_SIZE) and saved.header["method"] == "test-mask"
    assert set(saved.templates) == {"sface"}
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a cloakbench mask file"):
        load_mask(tmp_path / "bad.npz")


def _sface_template(fit: Path) -> torch.Tensor:
    """The user's template under SFace, as `bench protect --fit` saves it in the mask file."""
    from bench.data.faces import Aligner, canvases_to_tensor
    from bench.registry import TARGETS

    with torch.no_grad():
        return TARGETS.create("sface").embed(canvases_to_tensor([Aligner().align(p).canvas for p in fit.iterdir()])).mean(0)


@pytest.mark.slow
def test_a_30_megapixel_photo_keeps_its_size(tmp_path):
    user = _people()[0]
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_big_photo(_photos(user)[7], (6700, 4500), 12.0)).save(photos / "huge.jpg", quality=90)
    mask = _mask_file(tmp_path, {})
    out = tmp_path / "out"
    assert main(["protect", "--mask", str(mask), "--photos", str(photos), "--out", str(out), "--device", "cpu",
                 "--surrogates", "sface", "--faces", "all"]) == 0
    summary = json.loads((out / "protect-summary.json").read_text())
    assert summary["photos"][0]["status"] == "protected" and summary["photos"][0]["megapixels"] > 29
    assert Image.open(out / "huge.jpg").size == (6700, 4500)


def test_protect_with_saved_mask_handles_every_kind_of_photo(tmp_path, capsys):
    user, other = _people()[:2]
    fit = tmp_path / "fit"
    fit.mkdir()
    for p in _photos(user)[:4]:
        (fit / p.name).write_bytes(p.read_bytes())
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_big_photo(_photos(user)[5])).save(photos / "user_big.jpg", quality=95)
    # the user beside someone else: only the user's face is protected
    pair = np.concatenate([_big_photo(_photos(user)[6], (500, 700), 1.5), _big_photo(_photos(other)[0], (500, 700), 1.5)], 1)
    Image.fromarray(pair).save(photos / "pair.png")
    Image.new("RGB", (320, 240), (90, 120, 150)).save(photos / "no_face.png")
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    mask = _mask_file(tmp_path, {"sface": _sface_template(fit)})

    out = tmp_path / "out"
    code = main(["protect", "--mask", str(mask), "--photos", str(photos), "--out", str(out), "--device", "cpu",
                 "--surrogates", "sface"])
    assert code == 1  # one unreadable photo
    summary = json.loads((out / "protect-summary.json").read_text())
    status = {Path(p["source"]).name: p for p in summary["photos"]}
    assert status["corrupt.jpg"]["status"] == "unreadable" and "cannot read" in status["corrupt.jpg"]["reason"]
    assert status["no_face.png"]["status"] == "no-face" and (out / "no_face.png").read_bytes() == \
        (photos / "no_face.png").read_bytes()
    assert status["user_big.jpg"]["status"] == "protected"
    assert summary["faces"].startswith("the user's") and "FAR 1e-2" in summary["faces"]
    assert status["pair.png"]["faces"] == 2 and status["pair.png"]["protected_faces"] == 1
    edited = np.asarray(Image.open(out / "pair.png").convert("RGB")).astype(int)
    original = np.asarray(Image.open(photos / "pair.png").convert("RGB")).astype(int)
    moved = np.abs(edited - original).max(2)
    assert moved[:, :500].max() > 0 and moved[:, 500:].max() == 0  # the user is on the left
    assert "1 unreadable" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--photos", "nowhere", "--out", "x", "--mask", "m.npz"], "--photos nowhere: no such folder"),
    (["--photos", ".", "--out", "x"], "give either --method"),
    (["--photos", ".", "--out", "x", "--method", "uap"], "needs --fit"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["protect", *argv]) == 2
    assert message in capsys.readouterr().out


def test_fit_then_reuse_the_saved_mask(tmp_path):
    user = _people()[0]
    fit, photos = tmp_path / "fit", tmp_path / "photos"
    fit.mkdir()
    photos.mkdir()
    for p in _photos(user)[:4]:
        (fit / p.name).write_bytes(p.read_bytes())
    for p in _photos(user)[4:6]:
        (photos / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "out"
    assert main(["protect", "--method", "uap", "--fit", str(fit), "--photos", str(photos), "--out", str(out),
                 "--surrogates", "sface", "--device", "cpu", "--set", "iterations=1", "--faces", "all"]) == 0
    saved = load_mask(out / "mask.npz")
    assert saved.header["method"] == "uap" and saved.mask.abs().max() <= saved.header["budget"]["linf"] + 1e-6
    again = tmp_path / "again"
    assert main(["protect", "--mask", str(out / "mask.npz"), "--photos", str(photos), "--out", str(again),
                 "--device", "cpu", "--faces", "all"]) == 0
    for p in photos.iterdir():  # the same mask gives the same photos
        a = np.asarray(Image.open(out / p.name)).astype(int)
        b = np.asarray(Image.open(again / p.name)).astype(int)
        assert np.abs(a - b).max() <= 1


def test_a_saved_mask_applies_with_yunet_as_the_detector(tmp_path):
    """``--detector yunet``: OpenCV's detector finds and protects the face, and the summary says which ran."""
    photos = tmp_path / "photos"
    photos.mkdir()
    source = _big_photo(_photos(_people()[0])[3])
    Image.fromarray(source).save(photos / "user.png")
    out = tmp_path / "out"
    assert main(["protect", "--mask", str(_mask_file(tmp_path, {})), "--photos", str(photos), "--out", str(out),
                 "--device", "cpu", "--surrogates", "sface", "--faces", "all", "--detector", "yunet"]) == 0
    summary = json.loads((out / "protect-summary.json").read_text())
    assert summary["detector"] == "yunet" and summary["photos"][0]["status"] == "protected"
    edited = np.asarray(Image.open(out / "user.png").convert("RGB")).astype(int)
    moved = np.abs(edited - source.astype(int)).max(2)
    assert moved[:, :300].max() == 0 and moved.max() > 0  # the face sits on the right; the left is untouched
