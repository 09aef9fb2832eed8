"""Recognition models the user brings as ONNX files, converted to torch with onnx2torch (differentiable).

- ``arcface-r100``, ``arcface-r50``: InsightFace's ArcFace ResNets (Deng et al., "ArcFace: Additive Angular
  Margin Loss for Deep Face Recognition", CVPR 2019) as shipped in its model packs: ``glintr100.onnx``
  (antelopev2, IResNet-100 trained on Glint360K) and ``w600k_r50.onnx`` (buffalo_l, IResNet-50 on
  WebFace600K). Input 112 x 112 ArcFace crop, RGB, ``(x * 255 - 127.5) / 127.5``; 512-d. InsightFace's packs
  download from its release page at run time (fails offline) and are licensed for non-commercial research only:
  the user brings the file.
- ``onnx``: any single-input face embedding network; the config gives the file, crop size and zoom on the
  ArcFace template, channel order, mean and std (applied to 0..255 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.api import TARGETS, Framing, WeightSpec
from targets._checkpoint import CheckpointConfig, CheckpointTarget
from targets._onnx import convert_onnx, onnx2torch_status


@dataclass
class OnnxConfig(CheckpointConfig):
    size: int = 112  # the network's input side; the crop is the ArcFace template scaled to it
    zoom: float = 1.0  # > 1 enlarges the face inside the crop
    channels: str = "rgb"  # "rgb" or "bgr"
    mean: float = 127.5  # on 0..255 pixels
    std: float = 127.5

    def __post_init__(self):
        if self.channels not in ("rgb", "bgr"):
            raise ValueError(f"channels must be 'rgb' or 'bgr', got {self.channels!r}")
        if self.size < 16 or self.std <= 0 or self.zoom <= 0:
            raise ValueError(f"need size >= 16, std > 0 and zoom > 0, got {self.size}, {self.std}, {self.zoom}")


class OnnxEmbedder(CheckpointTarget):
    Config = OnnxConfig
    framing = Framing.arcface(112)  # the default config's; each instance sets its own from its config
    preprocessing = "ArcFace-template crop, RGB/BGR, (x*255-mean)/std (config)"

    def __init__(self, config: OnnxConfig | None = None):
        super().__init__(config)
        cfg = self.config
        self.framing = Framing.arcface(cfg.size, cfg.zoom)

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        return onnx2torch_status()

    def build_network(self) -> torch.nn.Module:
        return convert_onnx(self.weight_file(), self.name)

    def _load(self) -> None:
        super()._load()
        with torch.no_grad():  # learn the embedding size from the network itself
            probe = torch.zeros(1, 3, self.config.size, self.config.size, device=self.device)
            self.embedding_dim = int(self.network(probe).flatten(1).shape[1])

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        if self.config.channels == "bgr":
            crops = crops.flip(1)
        return (crops * 255.0 - self.config.mean) / self.config.std


@TARGETS.register("onnx")
class GenericOnnx(OnnxEmbedder):
    weights = (WeightSpec(name="onnx", filename="model.onnx", sha256="", source="path", license="user's"),)


_INSIGHTFACE = "https://github.com/deepinsight/insightface/releases/download/v0.7/"


@TARGETS.register("arcface-r100")
class ArcFaceR100(OnnxEmbedder):
    embedding_dim = 512
    weights = (
        WeightSpec(
            name="arcface-r100",
            filename="glintr100.onnx",
            sha256="",
            source="path",
            url=_INSIGHTFACE + "antelopev2.zip",
            license="InsightFace model packs: non-commercial research only",
        ),
    )


@TARGETS.register("arcface-r50")
class ArcFaceR50(OnnxEmbedder):
    embedding_dim = 512
    weights = (
        WeightSpec(
            name="arcface-r50",
            filename="w600k_r50.onnx",
            sha256="",
            source="path",
            url=_INSIGHTFACE + "buffalo_l.zip",
            license="InsightFace model packs: non-commercial research only",
        ),
    )
