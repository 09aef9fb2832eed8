"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) as a differentiable torch network.

King, "High Quality Face Recognition with Deep Metric Learning", dlib blog 2017: a ResNet-34 variant with a
few layers removed and filters halved (29 conv layers), trained with a pairwise hinge metric loss on ~3M faces;
99.38% on LFW with dlib's own pipeline. Input a 150 x 150 RGB chip (dlib's ``get_face_chip(shape, 150, 0.25)``),
each channel minus (122.782, 117.001, 104.298) and divided by 256 (dlib's ``input_rgb_image``); 128-d output,
compared by Euclidean distance (dlib's threshold 0.6; the embedding is L2-normalised here, which the ranking
on the unit sphere barely changes).

Weights: the TF.js port in npm ``@vladmandic/face-api@1.7.15`` (MIT), ``model/face_recognition_model.bin`` (uint8
quantised) and its weights manifest. Layers: 7x7/2 conv, 3x3/2 max pool, residual stages of 32, 64, 128, 256
filters (3x3 convs, each followed by dlib's ``affine`` layer, folded into the conv here), down-sampling blocks
with a stride-2 ``valid`` conv whose shortcut is a 2x2 average pool zero-padded to the wider channel count
(and the block output zero-padded at the bottom/right when the pooled shortcut is larger, as dlib's
``add_prev`` does), then a global mean and a 256 x 128 matrix.

Framing: dlib's chip as a five-point template in its 150 px crop, measured by mapping MTCNN landmarks of LFW
photos into the chips dlib itself cuts (HOG detector + 5-point predictor, ``get_face_chip_details(shape, 150,
0.25)``) and averaging.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import TARGETS, Framing, WeightSpec, ensure, read_weights
from targets.base import TorchTarget

_FACE_API = dict(source="npm", package="@vladmandic/face-api", version="1.7.15", license="MIT")

DLIB_RESNET_BIN = WeightSpec(
    name="dlib-resnet",
    filename="face_recognition_model.bin",
    sha256="b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
    member="model/face_recognition_model.bin",
    size_mb=6.4,
    **_FACE_API,
)
DLIB_RESNET_MANIFEST = WeightSpec(
    name="dlib-resnet-manifest",
    filename="face_recognition_model-weights_manifest.json",
    sha256="cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
    member="model/face_recognition_model-weights_manifest.json",
    size_mb=0.02,
    **_FACE_API,
)

# dlib's input_rgb_image: per-channel means (R, G, B) and the divisor.
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DLIB_DIVISOR = 256.0

# Left eye, right eye, nose, left and right mouth corner (MTCNN's points) in dlib's 150 px chip.
# Mean over 300 random LFW photos; dlib's chip reproduced by the same mapping to 0.5 grey levels.
DLIB_CHIP_TEMPLATE = ((47.92, 45.87), (102.00, 46.11), (75.29, 78.85), (50.83, 105.79), (98.45, 106.08))


def _conv(weights: dict, prefix: str, stride: int, padding: int) -> nn.Conv2d:
    """A conv + dlib affine (per-channel scale and shift) pair folded into one ``nn.Conv2d``."""
    kernel = torch.from_numpy(weights[f"{prefix}/conv/filters"]).permute(3, 2, 0, 1)
    bias = torch.from_numpy(weights[f"{prefix}/conv/bias"])
    scale = torch.from_numpy(weights[f"{prefix}/scale/weights"])
    shift = torch.from_numpy(weights[f"{prefix}/scale/biases"])
    conv = nn.Conv2d(kernel.shape[1], kernel.shape[0], kernel.shape[2], stride=stride, padding=padding)
    with torch.no_grad():
        conv.weight.copy_(kernel * scale.view(-1, 1, 1, 1))
        conv.bias.copy_(bias * scale + shift)
    return conv


class _Residual(nn.Module):
    def __init__(self, weights: dict, prefix: str):
        super().__init__()
        self.conv1 = _conv(weights, f"{prefix}/conv1", 1, 1)
        self.conv2 = _conv(weights, f"{prefix}/conv2", 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class _ResidualDown(nn.Module):
    def __init__(self, weights: dict, prefix: str):
        super().__init__()
        self.conv1 = _conv(weights, f"{prefix}/conv1", 2, 0)
        self.conv2 = _conv(weights, f"{prefix}/conv2", 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2)
        # dlib's add_prev adds tensors of different shapes as if both were zero-padded to the larger one.
        dh, dw = shortcut.shape[2] - out.shape[2], shortcut.shape[3] - out.shape[3]
        if dh or dw:
            out = F.pad(out, (0, dw, 0, dh))
        shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, out.shape[1] - shortcut.shape[1]))
        return F.relu(out + shortcut)


class DlibResNet(nn.Module):
    """N x 3 x 150 x 150 normalised RGB -> N x 128 descriptors (not normalised)."""

    STAGES = (
        ("conv32_1", "conv32_2", "conv32_3"),
        ("conv64_down", "conv64_1", "conv64_2", "conv64_3"),
        ("conv128_down", "conv128_1", "conv128_2"),
        ("conv256_down", "conv256_1", "conv256_2"),
        ("conv256_down_out",),
    )

    def __init__(self, weights: dict):
        super().__init__()
        self.stem = _conv(weights, "conv32_down", 2, 0)
        self.blocks = nn.Sequential(*[
            _ResidualDown(weights, name) if "down" in name else _Residual(weights, name)
            for stage in self.STAGES for name in stage
        ])
        self.fc = nn.Parameter(torch.from_numpy(weights["fc"]).clone(), requires_grad=False)  # 256 x 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # ~1.4x faster convolutions on CPU (oneDNN)
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        return self.blocks(x).mean(dim=(2, 3)) @ self.fc


def load_dlib_resnet() -> DlibResNet:
    """Fetch (npm), verify and build the network."""
    manifest = json.loads(ensure(DLIB_RESNET_MANIFEST).read_text())
    weights = read_weights(manifest, {DLIB_RESNET_BIN.filename: ensure(DLIB_RESNET_BIN)})
    return DlibResNet(weights)


@TARGETS.register("dlib-resnet")
class DlibResNetTarget(TorchTarget):
    """dlib ResNet-29 (TF.js port of face-api), 150 px dlib chip, RGB (x*255 - mean) / 256, 128-d."""

    embedding_dim = 128
    framing = Framing(150, DLIB_CHIP_TEMPLATE)
    weights = (DLIB_RESNET_BIN, DLIB_RESNET_MANIFEST)
    preprocessing = "dlib 150 px chip (padding 0.25), RGB, (x*255 - (122.782, 117.001, 104.298)) / 256"

    def build_network(self) -> nn.Module:
        return load_dlib_resnet()

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        mean = crops.new_tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)
        return (crops * 255.0).sub_(mean).div_(DLIB_DIVISOR)  # in place on the fresh product: no more copies
