"""ArcFace MobileFaceNet run by InsightFace's own ONNX runner: the ``arcface-mbf`` weights, as a black box.

The attacker's-own-toolchain view of ArcFace (Deng et al., CVPR 2019): ``insightface.model_zoo.ArcFaceONNX``
(onnxruntime, InsightFace's own input blob from 8-bit BGR crops) instead of the torch conversion, so the runtime
and the 8-bit input are part of what is measured. It shares its weight file with ``arcface-mbf``: where that
target is a surrogate, this one is judged white-box (as ``sface-cv2`` is for ``sface``).

Input: the 112 ArcFace crop as 8-bit BGR, which ``ArcFaceONNX.get_feat`` turns into RGB ``(x - 127.5) / 127.5``;
512-d, unit-normalised here. Runtime: ``insightface`` 2.1 (MIT code; its models are for non-commercial research
only), installed with ``pip install --no-deps insightface==2.1``: its metadata asks for ``opencv-python`` beside
this project's ``opencv-python-headless``, and two OpenCV distributions in one environment overwrite each
other's ``cv2`` files. Its other requirements come with this project's dependencies, except scikit-image (in
the ``test`` extra), which ``insightface.model_zoo`` imports.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.api import TARGETS, ensure, to_uint8
from targets.arcface import ARCFACE_MBF_ONNX, ArcFaceMobileFaceNet
from targets.base import BlackBoxTarget

INSIGHTFACE_INSTALL = ("pip install --no-deps insightface==2.1 (--no-deps keeps "
                       "opencv-python-headless the only cv2)")


@TARGETS.register("arcface-mbf-insightface")
class ArcFaceInsightFace(BlackBoxTarget):
    embedding_dim = 512
    framing = ArcFaceMobileFaceNet.framing
    weights = (ARCFACE_MBF_ONNX,)
    run_packages = ("onnxruntime",)  # insightface itself is never bundled (installed alone, see pyproject.toml)
    preprocessing = "112 ArcFace crop, 8-bit BGR into insightface ArcFaceONNX.get_feat"

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        try:
            from insightface.model_zoo.arcface_onnx import ArcFaceONNX  # noqa: F401
        except ImportError as exc:
            return False, f"insightface cannot be imported ({exc}); {INSIGHTFACE_INSTALL}"
        return True, None

    def _load(self) -> None:
        ok, reason = self.runtime_available()
        if not ok:
            raise RuntimeError(reason)
        import onnxruntime
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        path = str(ensure(ARCFACE_MBF_ONNX))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as torch targets do under --threads
        options.log_severity_level = 3  # the file declares batch 1 on its output: ORT warns on every larger batch
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._model = ArcFaceONNX(model_file=path, session=session)

    def _embed_batch(self, canvases: torch.Tensor) -> torch.Tensor:
        crops = to_uint8(self.framing.crop(canvases)).permute(0, 2, 3, 1).cpu().numpy()
        feats = self._model.get_feat([np.ascontiguousarray(c[:, :, ::-1]) for c in crops])
        return F.normalize(torch.from_numpy(np.asarray(feats, np.float32)), dim=1).to(canvases.device)
