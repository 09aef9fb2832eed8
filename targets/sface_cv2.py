"""SFace run by OpenCV's ``cv2.FaceRecognizerSF``: the same weights as the ``sface`` target, as a black box.

The attacker's-own-toolchain view of SFace (Zhong et al., IEEE TIP 2021): OpenCV's DNN module instead of a
torch conversion, so differences in the runtime (and 8-bit input) are part of what is measured. Weights: the
folded float file of ``targets.sface`` (OpenCV 5 refuses the block-quantised original). Input: the 112 ArcFace
crop as 8-bit BGR, which ``FaceRecognizerSF.feature`` turns into the RGB 0..255 blob the graph expects;
128-d output, unit-normalised.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.api import TARGETS, to_uint8
from targets.base import BlackBoxTarget
from targets.sface import SFACE_ONNX, SFace, folded_sface_onnx


@TARGETS.register("sface-cv2")
class SFaceOpenCV(BlackBoxTarget):
    embedding_dim = 128
    framing = SFace.framing
    weights = (SFACE_ONNX,)
    preprocessing = "112 ArcFace crop, 8-bit BGR into cv2.FaceRecognizerSF"

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        try:
            import cv2
        except ImportError as exc:
            return False, f"OpenCV is not importable ({exc}); pip install opencv-python-headless"
        if not hasattr(cv2, "FaceRecognizerSF"):
            return False, f"OpenCV {cv2.__version__} has no FaceRecognizerSF (needs 4.5.4 or newer)"
        return True, None

    def _load(self) -> None:
        ok, reason = self.runtime_available()
        if not ok:
            raise RuntimeError(reason)
        import cv2

        self._recognizer = cv2.FaceRecognizerSF.create(str(folded_sface_onnx()), "")

    def _embed_batch(self, canvases: torch.Tensor) -> torch.Tensor:
        crops = to_uint8(self.framing.crop(canvases)).permute(0, 2, 3, 1).cpu().numpy()
        feats = [self._recognizer.feature(np.ascontiguousarray(c[:, :, ::-1])).reshape(-1) for c in crops]
        out = torch.from_numpy(np.stack(feats).astype(np.float32))
        return F.normalize(out, dim=1).to(canvases.device)
