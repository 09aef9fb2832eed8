"""Compile a TF graph (TF.js ``model.json`` or any GraphDef in that form) into a torch :class:`GraphModule`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torch import nn

from bench.models.tfjs.graph import Graph, infer_ranks, prune, topological
from bench.models.tfjs.modules import Binary, Conv, GraphModule, Linear, Unary
from bench.models.tfjs.passes import fold_activations, fold_affine, fold_pads, prepare_convs, prepare_matmuls
from bench.models.tfjs.weights import TFJSError, load_graph_json, read_weights


def compile_graph(model: dict, weights: dict[str, np.ndarray], outputs: list[str],
                  repair_fused_relu: bool = False) -> GraphModule:
    """Build the torch modules of ``outputs`` of a TF.js graph model, folding what can be folded.

    ``repair_fused_relu``: undo a Relu the converter fused into a convolution whose pre-activation value also
    feeds the negative branch of a TF-slim PReLU (see :func:`match_prelu`).
    """
    g = Graph(model, weights)
    out_set = set(outputs)
    prune(g, out_set)
    prepare_convs(g)
    prepare_matmuls(g)
    fold_pads(g)
    fold_affine(g, out_set)
    fold_activations(g, out_set, repair_fused_relu)
    prune(g, out_set)
    nodes = topological(g, outputs)
    infer_ranks(nodes, g)
    rank = {n.name: n.rank for n in nodes}
    placeholders = [n for n in nodes if n.op == "Placeholder"]
    if len(placeholders) != 1:
        raise TFJSError(f"expected one graph input, found {[n.name for n in placeholders]}")
    steps: list[tuple[str, nn.Module, list[str]]] = []
    for node in nodes:
        if node.op in ("Placeholder", "Const"):
            continue
        if node.op == "Conv":
            steps.append((node.name, Conv(node), node.inputs))
        elif node.op == "Linear":
            steps.append((node.name, Linear(node), node.inputs))
        elif node.op in Binary._FNS or node.op == "BiasAdd":
            op = "Add" if node.op == "BiasAdd" else node.op
            split = g.split_const(node)
            if split is not None:
                src, c = split
                steps.append((node.name, Binary(op, c, node.inputs[0] != src, rank[src]), [src]))
            else:
                steps.append((node.name, Binary(op, None, False, node.rank), node.inputs))
        else:
            data = [i for i in node.inputs if g.const(i) is None][:1]
            steps.append((node.name, Unary(node, g, rank[data[0]]), data))
    last_use = {}
    for i, (_, _, args) in enumerate(steps):
        for a in args:
            last_use[a] = i
    return GraphModule(steps, placeholders[0].name, list(outputs), last_use)


def load_graph_model(model_json: str | Path, shards: Mapping[str, str | Path], outputs: list[str],
                     repair_fused_relu: bool = False) -> GraphModule:
    """Read a graph ``model.json`` and its shards, and compile ``outputs`` into a torch module."""
    model = load_graph_json(model_json)
    return compile_graph(model, read_weights(model, shards), outputs, repair_fused_relu)
