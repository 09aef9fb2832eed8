"""`bench protect` with one method of every family, as a user runs it: real LFW photos of the built-in subset,
fewer iterations through --set. Methods that take an identity bank get it as in a run (bound to a context), from
the embedded subset unless --data-root names another folder; the summary says which."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bench
from bench.cli import main

EMBEDDED = Path(bench.__file__).parent / "embedded"
SMALL_BANK = ["bank_identities=4", "bank_photos=1"]

# family -> (method, --set values that keep it fast, whether it takes an identity bank)
FAMILIES = {
    "universal": ("uap", ["iterations=1"], False),
    "universal-dssim": ("chameleon", ["epochs=1", "probe_steps=1"], False),
    "per-image feature-space": ("pgd", ["steps=1"], False),
    "torchattacks adapter": ("fgsm", SMALL_BANK, True),
    "fawkes": ("fawkes-low", ["steps=1"], False),
    "fawkes v0.3 (identity bank)": ("fawkes-v03-low", ["steps=1", "farthest=2", *SMALL_BANK], True),
    "tip-im": ("tip-im", ["steps=1", "candidates=2"], True),
    "lowkey": ("lowkey", ["steps=1"], False),
    "facecloak": ("facecloak", ["iterations=1", "views=1"], True),
    "region patch": ("adv-glasses", ["iterations=1", *SMALL_BANK], True),
    "obfuscation": ("gaussian-blur", [], False),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Three fit photos and one new photo of a person of the built-in subset with many photos."""
    images = EMBEDDED / "lfw" / "images"
    person = next(d for d in sorted(images.iterdir()) if d.is_dir() and len(list(d.glob("*.jpg"))) >= 8)
    photos = sorted(person.glob("*.jpg"))
    root = tmp_path_factory.mktemp("user")
    fit, new = root / "fit", root / "photos"
    fit.mkdir()
    new.mkdir()
    for p in photos[:3]:
        (fit / p.name).write_bytes(p.read_bytes())
    (new / photos[5].name).write_bytes(photos[5].read_bytes())
    return fit, new


def protect(method: str, settings: list[str], fit: Path, photos: Path, out: Path, *extra: str) -> dict:
    argv = ["protect", "--method", method, "--fit", str(fit), "--photos", str(photos), "--out", str(out),
            "--surrogates", "sface", "--device", "cpu", "--faces", "all", *extra]
    for s in settings:
        argv += ["--set", s]
    assert main(argv) == 0
    return json.loads((out / "protect-summary.json").read_text())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_bench_protect_works_for_every_family(family, folders, tmp_path):
    method, settings, takes_bank = FAMILIES[family]
    fit, photos = folders
    summary = protect(method, settings, fit, photos, tmp_path / "out")
    assert summary["counts"]["protected"] == 1 and summary["faces_protected"] == 1
    for p in photos.iterdir():
        before = np.asarray(Image.open(p)).astype(int)
        after = np.asarray(Image.open(tmp_path / "out" / p.name)).astype(int)
        assert after.shape == before.shape and np.abs(after - before).max() > 0, f"{method} left the photo as it was"
    if takes_bank:
        bank = summary["identity_bank"]
        assert bank["source"] == "embedded LFW subset" and Path(bank["from"]) == EMBEDDED
        assert list(bank["used"]) and all(len(d) == 24 for d in bank["used"].values())
    else:
        assert "identity_bank" not in summary


def test_the_identity_bank_comes_from_the_data_root_given(folders, tmp_path):
    fit, photos = folders
    data = tmp_path / "data"
    (data / "lfw").mkdir(parents=True)
    people = [d for d in sorted((EMBEDDED / "lfw" / "images").iterdir()) if d.is_dir()][-6:]
    for d in people:
        (data / "lfw" / d.name).symlink_to(d)
    summary = protect("fgsm", SMALL_BANK, fit, photos, tmp_path / "out", "--data-root", str(data))
    assert summary["identity_bank"]["source"] == "--data-root" and summary["identity_bank"]["from"] == str(data)
    default = protect("fgsm", SMALL_BANK, fit, photos, tmp_path / "default")
    assert summary["identity_bank"]["used"] != default["identity_bank"]["used"], "another folder, another bank"


def test_a_data_root_that_cannot_give_the_bank_is_one_line(folders, tmp_path, capsys):
    fit, photos = folders
    argv = ["protect", "--method", "fgsm", "--fit", str(fit), "--photos", str(photos), "--out", str(tmp_path / "o"),
            "--surrogates", "sface", "--device", "cpu", "--data-root", str(tmp_path / "nowhere")]
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert "nowhere is not a folder" in out and "Traceback" not in out
