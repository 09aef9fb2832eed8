"""`bench bundle`: which packages go in (never torch or what comes with it) and which weight files."""

from __future__ import annotations

import hashlib

import pytest

from bench.bundle import PROVIDED, BundleError, closure, copy_home, weight_files, wheel_requirements
from bench.weights import WeightSpec


def test_closure_follows_installed_requirements_and_stops_where_told():
    rich = closure(["rich>=13"])
    assert {"rich", "markdown-it-py", "pygments", "mdurl"} <= set(rich)
    assert "pygments" not in closure(["rich"], stop=["Pygments"])  # names compare normalised
    with pytest.raises(BundleError, match="not installed"):
        closure(["surely-not-a-package-cloakbench-needs"])


def test_nothing_that_comes_with_torch_is_bundled():
    provided = closure(PROVIDED)
    assert {"torch", "torchvision", "numpy", "pillow"} <= set(provided)
    needed = closure(["lpips>=0.1.4", "onnx2torch>=1.5"], stop=provided)
    assert "torch" not in needed and "numpy" not in needed
    assert {"lpips", "onnx2torch", "scipy"} <= set(needed)


def _spec(tmp_path, name: str, data: bytes) -> WeightSpec:
    return WeightSpec(name=name, filename=f"{name}.bin", sha256=hashlib.sha256(data).hexdigest(), source="url",
                      url="https://example.invalid/" + name)


def test_weights_go_with_their_conversions_and_calibrations(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "cache"))
    spec = _spec(tmp_path, "model", b"weights")
    folder = tmp_path / "cache" / "weights" / "model"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"weights")
    (folder / f"{spec.sha256[:12]}-converted.pt").write_bytes(b"converted")
    (folder / f"{spec.sha256[:12]}-half.pt.part").write_bytes(b"interrupted")  # an unfinished conversion
    (folder / "other.bin").write_bytes(b"not ours")
    (tmp_path / "cache" / "calibration" / "model").mkdir(parents=True)
    (tmp_path / "cache" / "calibration" / "model" / "abc.json").write_text("{}")
    copied = copy_home(tmp_path / "bundle" / "home", [spec])
    names = sorted(p.relative_to(tmp_path / "bundle" / "home").as_posix() for p in copied)
    assert names == ["calibration/model/abc.json", f"weights/model/{spec.sha256[:12]}-converted.pt",
                     "weights/model/model.bin"]


def test_missing_or_corrupt_weights_stop_the_bundle_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    spec = _spec(tmp_path, "absent", b"x")
    with pytest.raises(BundleError, match="bench weights fetch absent"):
        weight_files([spec])
    (tmp_path / "weights" / "absent").mkdir(parents=True)
    (tmp_path / "weights" / "absent" / "absent.bin").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="not fetched and verified"):
        weight_files([spec])


@pytest.mark.slow
def test_the_project_wheel_asks_for_torch_and_the_core_dependencies(tmp_path):
    from bench.bundle import _pip, project_root

    _pip(["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(project_root())], print)
    wheel = next(tmp_path.glob("cloakbench-*.whl"))
    core = {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in wheel_requirements(wheel, ())}
    assert {"torch", "torchvision", "facenet-pytorch", "lpips"} <= core and "ray" not in core
    assert "ray" in {r.split(">")[0].strip() for r in wheel_requirements(wheel, ("ray",))}
