"""Shared fixtures: real faces from ../shared/data (or $BENCH_DATA), aligned once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bench.data import shared_data_candidates

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _shared_root() -> Path:
    env = os.environ.get("BENCH_DATA")
    cands = [Path(env)] if env else shared_data_candidates()
    for cand in cands:
        if (cand / "lfw").is_dir() and (cand / "wild").is_dir():
            return cand
    raise RuntimeError(
        "tests need the shared data (lfw/ and wild/): put it at ../shared/data or set BENCH_DATA=/path/to/data"
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared_root()


@pytest.fixture(scope="session")
def aligner():
    from bench.faces import Aligner

    return Aligner()


@pytest.fixture(scope="session")
def wild_faces(shared_data, aligner) -> dict[str, torch.Tensor]:
    """The six wild photos as aligned canvases, by file stem (person_a_1, person_b_2, impostor_1, ...)."""
    from bench.faces import canvases_to_tensor

    out = {}
    for path in sorted((shared_data / "wild").glob("*.jpg")):
        out[path.stem] = canvases_to_tensor([aligner.align(path).canvas])[0]
    return out


@pytest.fixture(scope="session")
def lfw_faces(shared_data, aligner) -> dict[str, torch.Tensor]:
    """Eight photos each of four LFW identities, aligned: identity -> 8 x 3 x 224 x 224."""
    from bench.faces import canvases_to_tensor

    names = ["Colin_Powell", "George_W_Bush", "Tony_Blair", "Gerhard_Schroeder"]
    out = {}
    for name in names:
        photos = sorted((shared_data / "lfw" / "images" / name).glob("*.jpg"))[:8]
        out[name] = canvases_to_tensor([aligner.align(p).canvas for p in photos])
    return out


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
    from bench.paths import bench_home

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
