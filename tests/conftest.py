"""Shared fixtures: real faces, aligned once per session.

Faces come from the shared data (``$BENCH_DATA`` or ../shared/data: LFW's 500 identities with its pair lists,
and wild/, six full-size photos) when it is there, and otherwise from the LFW subset embedded in the package, so
a fresh clone runs every test the built-in data allows. A test that needs what only the shared data holds (full
LFW, its pair lists, the full-size photos) asks for ``shared_data`` and is skipped, saying how to enable it;
under BENCH_STRICT=1 (CI) a skip is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bench.core.paths import embedded_data_root
from bench.data.datasets import shared_data_candidates

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ENABLE_SHARED = "set BENCH_DATA=/path/to/data (a folder holding lfw/ and wild/) or put that folder at ../shared/data"
# Without wild/, two photos each of two embedded people and one each of two others stand in for the six wild
# photos, under the same keys (the wild ones are one person years apart, another likewise, and two others).
WILD_STAND_INS = {
    "person_a_1": "Vladimir_Putin/Vladimir_Putin_0001.jpg",
    "person_a_2": "Vladimir_Putin/Vladimir_Putin_0002.jpg",
    "person_b_1": "Angelina_Jolie/Angelina_Jolie_0001.jpg",
    "person_b_2": "Angelina_Jolie/Angelina_Jolie_0002.jpg",
    "impostor_1": "Laura_Bush/Laura_Bush_0001.jpg",
    "impostor_2": "Igor_Ivanov/Igor_Ivanov_0001.jpg",
}


def pytest_addoption(parser) -> None:
    parser.addoption("--record-floors", action="store_true",
                     help="tests/plugins/test_behaviour_gate.py: write tests/data/behaviour_floors.json from the gate's run")


def _shared_root() -> Path | None:
    env = os.environ.get("BENCH_DATA")
    cands = [Path(env)] if env else shared_data_candidates()
    for cand in cands:
        if (cand / "lfw").is_dir() and (cand / "wild").is_dir():
            return cand
    return None


def pytest_report_header(config) -> str:
    root = _shared_root()
    if root is not None:
        return f"data: shared data at {root}"
    return (f"data: the embedded LFW subset ({embedded_data_root()}); tests that need the full shared data are "
            f"skipped: {ENABLE_SHARED}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data root (lfw/ with LFW's pair lists, wild/); skips the test when there is none."""
    root = _shared_root()
    if root is None:
        pytest.skip(f"needs the shared data (full LFW, wild/ photos): {ENABLE_SHARED}")
    return root


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """A data root whose lfw/images/ holds real identities: the shared data, else the embedded subset."""
    return _shared_root() or embedded_data_root()


@pytest.fixture(scope="session")
def aligner():
    from bench.data.faces import Aligner

    return Aligner()


@pytest.fixture(scope="session")
def wild_faces(aligner) -> dict[str, torch.Tensor]:
    """The six wild photos (person_a_1, person_a_2, person_b_1, person_b_2, impostor_1, impostor_2) as aligned
    canvases; without the shared data, embedded LFW photos stand in under the same keys (``WILD_STAND_INS``)."""
    from bench.data.faces import canvases_to_tensor

    root = _shared_root()
    if root is not None:
        paths = {p.stem: p for p in sorted((root / "wild").glob("*.jpg"))}
    else:
        paths = {key: embedded_data_root() / "lfw" / "images" / rel for key, rel in WILD_STAND_INS.items()}
    return {key: canvases_to_tensor([aligner.align(path).canvas])[0] for key, path in paths.items()}


@pytest.fixture(scope="session")
def lfw_faces(lfw_root, aligner) -> dict[str, torch.Tensor]:
    """Eight photos each of four LFW identities, aligned: identity -> 8 x 3 x 224 x 224. The embedded subset
    holds these four people too (20 photos each), so the same faces come from either data root."""
    from bench.data.faces import canvases_to_tensor

    names = ["Colin_Powell", "George_W_Bush", "Tony_Blair", "Gerhard_Schroeder"]
    out = {}
    for name in names:
        photos = sorted((lfw_root / "lfw" / "images" / name).glob("*.jpg"))[:8]
        out[name] = canvases_to_tensor([aligner.align(p).canvas for p in photos])
    return out


@pytest.fixture(scope="session")
def sface():
    """The SFace target, loaded: the surrogate the method tests optimise against."""
    from bench.registry import TARGETS

    target = TARGETS.create("sface")
    ok, reason = type(target).availability()
    if not ok:
        pytest.skip(f"sface unavailable: {reason}")
    target.load()
    return target


@pytest.fixture(scope="module")
def context(lfw_root, request):
    """What a run would hand a method: the identity bank from the data root, without the test module's ``USER``."""
    from bench.run.assembly import standalone_context

    return standalone_context(lfw_root, exclude=(request.module.USER,))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under BENCH_STRICT=1 (set by .ci/run) a skipped test fails: CI must not hide a model that did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("BENCH_STRICT") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under BENCH_STRICT=1 (CI installs everything the tests need): {reason}"


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    """A BENCH_HOME of the test's own (weights, converted files, calibrations), sharing the aligned-canvas cache
    and the LPIPS checkpoint with the real one, so tests may damage files without touching anyone's cache."""
    from bench.core.paths import bench_home

    shared = bench_home()
    home = tmp_path / "bench-home"
    home.mkdir()
    (shared / "canvases").mkdir(exist_ok=True)
    (home / "canvases").symlink_to(shared / "canvases")
    ckpt = shared / "weights" / "lpips-alex" / "alexnet.ckpt"
    if ckpt.is_file():
        (home / "weights" / "lpips-alex").mkdir(parents=True)
        (home / "weights" / "lpips-alex" / "alexnet.ckpt").symlink_to(ckpt)
    monkeypatch.setenv("BENCH_HOME", str(home))
    return home
