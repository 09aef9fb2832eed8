"""The surrogate zoo of the makeup/identity-mask attacks (TIP-IM, Adv-Makeup, AMT-GAN, Clip2Protect ...).

Those papers (Yang et al., "Towards Face Encryption by Generating Adversarial Identity Masks", ICCV 2021; Hu et
al., "Protecting Facial Privacy: Generating Adversarial Identity Masks via Style-robust Makeup Transfer", CVPR
2022) attack and report against four checkpoints they pass around as ``.pth`` state dicts: ``ir152.pth``,
``irse50.pth``, ``mobile_face.pth`` (and ``facenet.pth``, see ``targets.facenet``). The backbones follow
TreB1eN's InsightFace_Pytorch (``model.py``), written here from its published architecture with the same module
names so those state dicts load as they are:

- IR-152 / IR-SE-50: ArcFace's improved residual units (BN - conv3x3 - PReLU - conv3x3(stride) - BN, plus a
  squeeze-excitation (reduction 16) in the SE variant; shortcut = identity-subsample or conv1x1 + BN), stages of
  [3, 8, 36, 3] / [3, 4, 14, 3] units at 64/128/256/512 channels, each stage halving the resolution; head
  BN - dropout - flatten - linear(512*7*7, 512) - BN1d. Input 112 x 112, output 512-d.
- MobileFaceNet (Chen et al., "MobileFaceNets", CCBR 2018): depthwise-separable bottlenecks with PReLU, a 7 x 7
  global depthwise conv, linear(512, 512) - BN1d. Input 112 x 112, output 512-d.

Preprocessing as those papers feed them: the 112 x 112 ArcFace crop, RGB scaled to [-1, 1] ((x - 0.5) / 0.5).
The weights are not in any package registry: the user brings them.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.api import TARGETS, Framing, WeightSpec, load_into, load_state_dict
from targets._checkpoint import CheckpointTarget

IR_STAGES = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
IR_WIDTHS = (64, 128, 256, 512)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * w


class IRUnit(nn.Module):
    """Improved residual unit; ``stride`` 2 on the first unit of each stage."""

    def __init__(self, cin: int, cout: int, stride: int, se: bool):
        super().__init__()
        if cin == cout:  # identity, subsampled (a 1 x 1 max-pool with stride, no parameters)
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        layers = [
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if se:
            layers.append(SqueezeExcite(cout))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """IR-``depth`` (``se=False``) or IR-SE-``depth``: 112 x 112 RGB in [-1, 1] -> 512-d, unit norm."""

    def __init__(self, depth: int, se: bool, drop_ratio: float = 0.4):
        super().__init__()
        if depth not in IR_STAGES:
            raise ValueError(f"IR depth must be one of {sorted(IR_STAGES)}, got {depth}")
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units, cin = [], 64
        for count, cout in zip(IR_STAGES[depth], IR_WIDTHS, strict=True):
            units += [IRUnit(cin if i == 0 else cout, cout, 2 if i == 0 else 1, se) for i in range(count)]
            cin = cout
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


class ConvBNPReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthwiseBottleneck(nn.Module):
    """Expand (1x1) - depthwise 3x3 - project (1x1, linear); ``hidden`` is the expanded width."""

    def __init__(self, cin: int, cout: int, hidden: int, stride: int, residual: bool):
        super().__init__()
        self.conv = ConvBNPReLU(cin, hidden)
        self.conv_dw = ConvBNPReLU(hidden, hidden, 3, stride, 1, groups=hidden)
        self.project = ConvBN(hidden, cout)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class ResidualStack(nn.Module):
    def __init__(self, channels: int, count: int, hidden: int):
        super().__init__()
        self.model = nn.Sequential(
            *[DepthwiseBottleneck(channels, channels, hidden, 1, residual=True) for _ in range(count)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet: 112 x 112 RGB in [-1, 1] -> ``embedding_size``-d, unit norm."""

    def __init__(self, embedding_size: int = 512):
        super().__init__()
        self.conv1 = ConvBNPReLU(3, 64, 3, 2, 1)
        self.conv2_dw = ConvBNPReLU(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthwiseBottleneck(64, 64, 128, 2, residual=False)
        self.conv_3 = ResidualStack(64, 4, 128)
        self.conv_34 = DepthwiseBottleneck(64, 128, 256, 2, residual=False)
        self.conv_4 = ResidualStack(128, 6, 256)
        self.conv_45 = DepthwiseBottleneck(128, 128, 512, 2, residual=False)
        self.conv_5 = ResidualStack(128, 2, 256)
        self.conv_6_sep = ConvBNPReLU(128, 512)
        self.conv_6_dw = ConvBN(512, 512, 7, groups=512)
        self.linear = nn.Linear(512, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = stage(x)
        return nn.functional.normalize(self.bn(self.linear(x.flatten(1))), dim=1)


class ZooCheckpoint(CheckpointTarget):
    embedding_dim = 512
    framing = Framing.arcface(112)
    preprocessing = "112 ArcFace crop, RGB, (x-0.5)/0.5"

    def architecture(self) -> nn.Module:
        raise NotImplementedError

    def build_network(self) -> nn.Module:
        with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
            net = self.architecture()
        path = self.weight_file()
        load_into(net, load_state_dict(path, self.name), path, self.name)
        return net

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        return (crops - 0.5) / 0.5


def _zoo_spec(name: str, filename: str) -> WeightSpec:
    return WeightSpec(name=name, filename=filename, sha256="", source="path",
                      license="research checkpoints shared with AMT-GAN/TIP-IM; terms of their authors")


@TARGETS.register("ir152")
class IR152(ZooCheckpoint):
    weights = (_zoo_spec("ir152", "ir152.pth"),)

    def architecture(self) -> nn.Module:
        return IRBackbone(152, se=False)


@TARGETS.register("irse50")
class IRSE50(ZooCheckpoint):
    weights = (_zoo_spec("irse50", "irse50.pth"),)

    def architecture(self) -> nn.Module:
        return IRBackbone(50, se=True, drop_ratio=0.6)


@TARGETS.register("mobileface-amtgan")
class MobileFaceAMTGAN(ZooCheckpoint):
    weights = (_zoo_spec("mobileface-amtgan", "mobile_face.pth"),)

    def architecture(self) -> nn.Module:
        return MobileFaceNet(512)
