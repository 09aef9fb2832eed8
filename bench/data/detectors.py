"""The face detectors photos are aligned with: facenet-pytorch's MTCNN here, SCRFD (``bench.data.scrfd``) and
YuNet (``bench.data.yunet``) by name (``make_detector``)."""

from __future__ import annotations

import threading

import numpy as np
import torch
from PIL import Image


class MTCNNDetector:
    """facenet-pytorch's MTCNN, created once per process and device."""

    _lock = threading.Lock()
    _instances: dict[str, object] = {}

    def __init__(self, device: str = "cpu"):
        with self._lock:
            if device not in self._instances:
                from facenet_pytorch import MTCNN

                self._instances[device] = MTCNN(keep_all=True, device=device)
        self.model = self._instances[device]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            boxes, probs, points = self.model.detect(Image.fromarray(rgb), landmarks=True)
        if boxes is None:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        # facenet-pytorch returns object arrays here; cached npz files must hold plain floats
        return np.asarray(boxes, np.float64), np.asarray(probs, np.float64), np.asarray(points, np.float64)


def make_detector(name: str, device: str = "cpu"):
    """The face detector named by ``AlignSettings.detector``."""
    if name == "mtcnn":
        return MTCNNDetector(device)
    if name == "scrfd":
        from bench.data.scrfd import SCRFDDetector

        return SCRFDDetector(device)
    if name == "yunet":
        from bench.data.yunet import YuNetDetector

        return YuNetDetector(device)
    raise ValueError(f"unknown face detector '{name}' (use 'mtcnn', 'scrfd' or 'yunet')")

