"""Files cloakbench makes and keeps are checked before use; a model whose numbers are not finite fails loudly.

The case it guards against: 1 MiB of random bytes written into the converted SFace file (same size) gave
NaN embeddings, a run that finished with exit code 0, and a leaderboard of wrong numbers under unchanged task keys.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.core.checksums import IntegrityError, file_sha256, record, sidecar
from bench.data.faces import Aligner
from bench.registry import TARGETS
from bench.run.store import RunStore
from targets.base import NonFiniteEmbeddingError


def overwrite_middle_mib(path, seed=0) -> None:
    """Write 1 MiB of random bytes into the middle of ``path``, keeping its size (the issue's corruption)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - (1 << 19)
    data[start : start + (1 << 20)] = np.random.default_rng(seed).bytes(1 << 20)
    size = path.stat().st_size
    path.write_bytes(bytes(data))
    assert path.stat().st_size == size


def test_corrupted_converted_sface_is_refused_by_verify_and_rebuilt_on_use(isolated_home, wild_faces, capsys):
    from targets.sface import folded_sface_onnx

    faces = torch.stack([wild_faces["person_a_1"], wild_faces["person_a_2"], wild_faces["impostor_1"]])
    good = TARGETS.create("sface").embed(faces)
    folded = folded_sface_onnx()
    good_digest = file_sha256(folded)
    assert sidecar(folded).read_text().split()[0] == good_digest  # recorded when made

    overwrite_middle_mib(folded)
    assert main(["weights", "verify", "sface"]) == 1
    out = capsys.readouterr().out
    assert "converted" in out and "was recorded when it was made" in out and str(folded) in out

    target = TARGETS.create("sface")
    again = target.embed(faces)  # refused, rebuilt from the verified original
    assert file_sha256(folded) == good_digest
    assert torch.isfinite(again).all() and torch.allclose(again, good, atol=1e-5)
    assert good_digest in target.weight_digests()  # the converted file enters task keys by content
    assert main(["weights", "verify", "sface"]) == 0


def test_non_finite_embeddings_raise_instead_of_ranking(isolated_home, wild_faces):
    from targets.sface import folded_sface_onnx

    folded = folded_sface_onnx()
    overwrite_middle_mib(folded)
    record(folded, file_sha256(folded))  # a bad file that was recorded as made: only its numbers can tell
    target = TARGETS.create("sface")
    with pytest.raises(NonFiniteEmbeddingError, match="sface: 2 of 2 embeddings are not finite"):
        target.embed(torch.stack([wild_faces["person_a_1"], wild_faces["person_b_1"]]))


def test_a_run_with_non_finite_embeddings_fails_its_tasks_and_exits_non_zero(isolated_home, tmp_path, capsys):
    from bench.core.paths import embedded_data_root
    from targets.sface import folded_sface_onnx

    folded = folded_sface_onnx()
    overwrite_middle_mib(folded)
    record(folded, file_sha256(folded))
    out = tmp_path / "run"
    rc = main(["run", "--suite", "smoke", "--users", "2", "--gallery-identities", "6", "--set", "pgd.steps=1",
               "--adversaries", "none", "--data-root", str(embedded_data_root()), "--out", str(out),
               "--threads", "1"])
    text = " ".join(capsys.readouterr().out.split())
    assert rc == 1 and "task(s) failed" in text and "not finite" in text
    store = RunStore.open_existing(out)
    statuses = dict(store.db.execute("SELECT label, status FROM tasks").fetchall())
    assert statuses["clean/sface"] == "failed" and "done" not in statuses.values()
    board = json.loads((out / "leaderboard.json").read_text())
    assert not board["clean"].get("sface", {}).get("top1_accuracy")  # no clean accuracy reported from NaNs


def test_converted_lpips_weights_are_checked_too(isolated_home):
    from bench.measures.lpips import ALEXNET_SPEC, converted_weights

    if not (isolated_home / "weights" / "lpips-alex" / "alexnet.ckpt").exists():
        pytest.skip(f"LPIPS checkpoint not fetched: bench weights fetch {ALEXNET_SPEC.name}")
    path = converted_weights()
    digest = file_sha256(path)
    overwrite_middle_mib(path, seed=1)
    assert converted_weights() == path and file_sha256(path) == digest


def test_calibration_file_with_changed_bytes_is_refused(isolated_home):
    from bench.measures.calibration_store import calibration_path, load_calibration, save_calibration

    save_calibration({"name": "sface", "data": {"fingerprint": "lfw-copy"}, "thresholds": {"far1e-3": 0.41}})
    assert load_calibration("sface", "lfw-copy")["thresholds"]["far1e-3"] == 0.41
    path = calibration_path("sface", "lfw-copy")
    path.write_text(path.read_text().replace("0.41", "0.91"))
    with pytest.raises(IntegrityError, match="--recalibrate"):
        load_calibration("sface", "lfw-copy")
    target = TARGETS.create("sface")
    with pytest.raises(IntegrityError):  # the runner reports such a target unavailable, with this reason
        target.load()


def test_damaged_alignment_cache_is_realigned(shared_data, tmp_path):
    photo = shared_data / "wild" / "person_b_2.jpg"
    messages = []
    aligner = Aligner(cache_dir=tmp_path, log=messages.append)
    first = aligner.align(photo)
    (cached,) = tmp_path.rglob("*.npz")
    with np.load(cached) as z:
        arrays = dict(z)
    arrays["canvases"] = arrays["canvases"].copy()
    arrays["canvases"][0, 100:110, 100:110] = 0  # a stale or damaged canvas whose recorded digest no longer fits
    np.savez_compressed(cached, **arrays)
    again = aligner.align(photo)
    assert messages and "do not match the digest" in messages[0]
    assert np.array_equal(again.canvas, first.canvas)
    cached.write_bytes(b"PK\x03\x04 cut short")
    assert np.array_equal(aligner.align(photo).canvas, first.canvas) and "unreadable" in messages[1]


def test_aligning_past_the_cache_leaves_the_cache_as_it_is(lfw_root, tmp_path):
    # bench perf's naive loop aligns with cached=False; writing its result back replaced, mid-run, the canvas a
    # run had started with (a few pixels differ with another thread count), so Ray workers reading the cache later
    # protected another photo than the driver had planned on
    photo = sorted((lfw_root / "lfw" / "images").glob("*/*.jpg"))[0]
    aligner = Aligner(cache_dir=tmp_path)
    aligner.align(photo, cached=False)
    assert not list(tmp_path.rglob("*.npz"))
    first = aligner.align(photo)
    (cached,) = tmp_path.rglob("*.npz")
    before = cached.stat()
    aligner.align(photo, cached=False)
    after = cached.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert np.array_equal(aligner.align(photo).canvas, first.canvas)
