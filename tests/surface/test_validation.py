"""A run request is checked before any compute: one line naming the bad value and what is allowed, exit code 2,
and nothing written: bad configurations, devices, data roots and output folders."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.core.paths import embedded_data_root

EMBEDDED = str(embedded_data_root())


@pytest.fixture
def no_face_detection(monkeypatch):
    """Fails the test if anything starts the face detector."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("face detection started before the request was checked")

    monkeypatch.setattr("bench.data.detectors.MTCNNDetector.__init__", refuse)


def refused(capsys, args: list[str], out, lines: int = 1) -> str:
    """Run ``bench run`` with ``args``: exit code 2, ``lines`` lines of output, the last one the error, and nothing
    left behind. Returns the error line."""
    before = sorted(out.parent.rglob("*")) if out.parent.exists() else []
    assert main(["run", "--suite", "smoke", "--out", str(out), *args]) == 2
    text = capsys.readouterr().out.strip()
    assert text.count("\n") == lines - 1, text
    after = sorted(out.parent.rglob("*")) if out.parent.exists() else []
    assert after == before, f"left behind: {sorted(set(after) - set(before))}"
    return text.splitlines()[-1]


@pytest.mark.parametrize(("args", "expected"), [
    (["--users", "0"], "users=0 is out of range; allowed: users >= 1"),
    (["--users", "13", "--gallery-identities", "56"], "allowed: 1 <= users <= 12"),
    (["--users", "30"], "users=30 exceeds gallery_identities=20; allowed: users <= gallery_identities"),
    (["--gallery-identities", "0"], "gallery_identities=0 is out of range; allowed: gallery_identities >= 1"),
    (["--threads", "0"], "--threads 0 is out of range; allowed: --threads >= 1"),
    (["--device", "gpu7"], "--device 'gpu7' is not a torch device"),
    (["--set", "pgd.epsilon=2"], "epsilon=2 is out of range; allowed: 0 < epsilon <= 1"),
    (["--set", "pgd.steps=many"], "steps='many' is not a whole number"),
    (["--set", "pgd.steps=100000000000"], "steps=100000000000 is out of range; allowed: steps <= 100000"),
    (["--adversaries", "nope"], "Known adversaries:"),
    (["--scenarios", "probe,sideways"], "scenarios must be among probe, gallery"),
])
def test_bad_values_are_refused_up_front(capsys, tmp_path, no_face_detection, args, expected):
    text = refused(capsys, ["--data-root", EMBEDDED, *args], tmp_path / "run")
    assert expected in text


def test_bad_paths_are_refused_up_front(capsys, tmp_path, no_face_detection):
    missing = tmp_path / "nowhere"
    assert f"--data-root {missing} is not a folder" in refused(capsys, ["--data-root", str(missing)], tmp_path / "a")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no 'lfw' identity folders under" in refused(capsys, ["--data-root", str(empty)], tmp_path / "b")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "is a file, not a folder" in refused(capsys, ["--data-root", EMBEDDED], a_file)
    assert "cannot be created" in refused(capsys, ["--data-root", EMBEDDED], a_file / "run")
    assert "holds other files and is not a run folder" in refused(capsys, ["--data-root", EMBEDDED], tmp_path)


def test_weights_are_checked_before_face_detection(capsys, tmp_path, monkeypatch, no_face_detection):
    monkeypatch.setenv("BENCH_WEIGHTS_SFACE", str(tmp_path / "missing.onnx"))
    # one line as the target is found unavailable (a run goes on without such a target), then the error
    text = refused(capsys, ["--data-root", EMBEDDED], tmp_path / "run", lines=2)
    assert text.startswith("error: none of the surrogates ['sface'] is available and differentiable (sface: ")
    assert "missing.onnx does not exist" in text


def test_lpips_weights_are_checked_before_face_detection(capsys, tmp_path, monkeypatch, no_face_detection):
    bad = tmp_path / "alexnet.ckpt"
    bad.write_bytes(b"not the LPIPS weights")
    monkeypatch.setenv("BENCH_WEIGHTS_LPIPS_ALEX", str(bad))
    text = refused(capsys, ["--data-root", EMBEDDED], tmp_path / "run")
    assert text.startswith("error: LPIPS weights: ") and "it is a different or corrupt file" in text
