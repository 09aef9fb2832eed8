"""Compile passes over a :class:`~bench.models.tfjs.graph.Graph`: convolutions and matmuls take torch layouts, and
per-channel affine constants, zero pads and activations (clamps, PReLU spellings) fold into them."""

from __future__ import annotations

import math

import numpy as np

from bench.models.tfjs.graph import CONV_OPS, Graph, Node, per_channel, prune
from bench.models.tfjs.weights import TFJSError


def prepare_convs(g: Graph) -> None:
    for node in list(g.nodes.values()):
        if node.op not in CONV_OPS:
            continue
        kernel = g.const(node.inputs[1])
        if kernel is None:
            raise TFJSError(f"{node.name}: convolution with a non-constant kernel is not supported")
        if node.attr.get("data_format", "NHWC") != "NHWC":
            raise TFJSError(f"{node.name}: only NHWC graphs are supported")
        if any(d != 1 for d in node.attr.get("dilations", [1, 1, 1, 1])):
            raise TFJSError(f"{node.name}: dilated convolutions are not supported")
        depthwise = "Depthwise" in node.op
        if depthwise:
            h, w, c, m = kernel.shape
            node.weight = kernel.reshape(h, w, c * m).transpose(2, 0, 1)[:, None].copy()
            node.extra["groups"] = c
        else:
            node.weight = kernel.transpose(3, 2, 0, 1).copy()
            node.extra["groups"] = 1
        out_ch = node.weight.shape[0]
        node.bias = np.zeros(out_ch, np.float32)
        fused = node.attr.get("fused_ops", [])
        args = node.inputs[2:]
        node.inputs = node.inputs[:1]
        for op in fused:
            if op == "BiasAdd":
                node.bias = node.bias + g.const(args[0]).reshape(out_ch)
            elif op == "Relu":
                node.act = ("clamp", 0.0, math.inf)
            elif op == "Relu6":
                node.act = ("clamp", 0.0, 6.0)
            elif op == "Prelu":
                node.act = ("prelu", g.const(args[1]).reshape(out_ch))
            else:
                raise TFJSError(f"{node.name}: fused op {op!r} is not supported")
        node.extra["stride"] = node.attr["strides"][1:3]
        node.extra["same"] = node.attr.get("padding") == "SAME"
        if node.attr.get("padding") == "EXPLICIT":
            raise TFJSError(f"{node.name}: EXPLICIT padding is not supported")
        node.op = "Conv"


def prepare_matmuls(g: Graph) -> None:
    for node in list(g.nodes.values()):
        if node.op not in ("MatMul", "_FusedMatMul"):
            continue
        kernel = g.const(node.inputs[1])
        if kernel is None or node.attr.get("transpose_a"):
            raise TFJSError(f"{node.name}: only x @ constant matmuls are supported")
        node.weight = (kernel if node.attr.get("transpose_b") else kernel.T).copy()
        node.bias = np.zeros(node.weight.shape[0], np.float32)
        args = node.inputs[2:]
        node.inputs = node.inputs[:1]
        for op in node.attr.get("fused_ops", []):
            if op == "BiasAdd":
                node.bias = node.bias + g.const(args[0]).reshape(-1)
            elif op == "Relu":
                node.act = ("clamp", 0.0, math.inf)
            else:
                raise TFJSError(f"{node.name}: fused op {op!r} is not supported")
        node.op = "Linear"


def fold_pads(g: Graph) -> None:
    for node in list(g.nodes.values()):
        if node.op not in ("Pad", "PadV2") or node.name not in g.nodes:
            continue
        pads = g.const(node.inputs[1])
        user = g.sole_consumer(node.name)
        zero = node.op == "Pad" or float(g.const(node.inputs[2]).reshape(-1)[0]) == 0.0
        if user is None or user.op != "Conv" or not zero or pads.shape != (4, 2) or pads[[0, 3]].any():
            continue
        (top, bottom), (left, right) = pads[1], pads[2]
        user.pads = (int(left), int(right), int(top), int(bottom))
        g.replace(node.name, node.inputs[0])


def absorb(g: Graph, keep: Node, gone: Node) -> None:
    """``keep`` (whose sole consumer is ``gone``) now computes ``gone``'s value and takes its name."""
    g.nodes.pop(gone.name)
    g.nodes.pop(keep.name)
    keep.name = gone.name
    g.nodes[keep.name] = keep


def fold_affine(g: Graph, outputs: set[str]) -> None:
    """Fold per-channel Mul / Add / Sub constants that follow a convolution or matmul with no activation yet."""
    changed = True
    while changed:
        changed = False
        for node in list(g.nodes.values()):
            if node.op not in ("Conv", "Linear") or node.act is not None or node.name in outputs:
                continue
            user = g.sole_consumer(node.name)
            if user is None or user.op not in ("Mul", "Add", "AddV2", "Sub", "BiasAdd"):
                continue
            split = g.split_const(user)
            if split is None or split[0] != node.name or (user.op == "Sub" and user.inputs[0] != node.name):
                continue
            c = per_channel(split[1], node.weight.shape[0])
            if c is None:
                continue
            if user.op == "Mul":
                node.weight = node.weight * c.reshape(-1, *([1] * (node.weight.ndim - 1)))
                node.bias = node.bias * c
            else:
                node.bias = node.bias + (-c if user.op == "Sub" else c)
            absorb(g, node, user)
            changed = True


def match_prelu(g: Graph, add: Node, repair_fused_relu: bool) -> tuple[str, np.ndarray] | None:
    """Recognise the PReLU spellings of converted models in the op ``add``; returns (input, alpha)."""
    if add.op not in ("Add", "AddV2") or len(add.inputs) != 2:
        return None
    a, b = (g.nodes.get(i) for i in add.inputs)
    if a is None or b is None:
        return None
    for pos, neg in ((a, b), (b, a)):
        sn = g.split_const(neg) if neg.op == "Mul" else None
        if sn is None:
            continue
        inner = g.nodes.get(sn[0])
        if inner is None:
            continue
        # MXNet export: max(x, 0) + gamma * min(x, 0)
        if pos.op == "Maximum" and inner.op == "Minimum":
            sp, sm = g.split_const(pos), g.split_const(inner)
            if sp and sm and sp[0] == sm[0] and not np.any(sp[1]) and not np.any(sm[1]):
                return sp[0], np.asarray(sn[1], np.float32)
        # TF-slim: relu(x) + c * (x - |x|), i.e. PReLU with alpha = 2c
        if inner.op == "Sub" and len(inner.inputs) == 2:
            x, absn = inner.inputs[0], g.nodes.get(inner.inputs[1])
            if absn is None or absn.op != "Abs" or absn.inputs[0] != x:
                continue
            if pos.op == "Relu" and pos.inputs[0] == x:
                return x, 2.0 * np.asarray(sn[1], np.float32)
            xn = g.nodes.get(x)
            if pos.name == x and xn is not None and xn.op == "Conv" and xn.act == RELU and repair_fused_relu:
                # The converter fused the positive branch's Relu into the convolution although the negative
                # branch reads the same pre-Relu value: as shipped, x - |x| is then always 0 and the PReLU
                # degenerates to a ReLU. Undo the fusion.
                xn.act = None
                return x, 2.0 * np.asarray(sn[1], np.float32)
    return None


RELU = ("clamp", 0.0, math.inf)


def compose(first: tuple, then: tuple) -> tuple | None:
    """One activation equal to ``then(first(x))``, if there is one (clamps compose into a clamp)."""
    if first is None:
        return then
    if first[0] == "clamp" and then[0] == "clamp":
        _, lo, hi = first
        _, lo2, hi2 = then
        return ("clamp", min(max(lo, lo2), hi2), min(max(hi, lo2), hi2))
    return None


def fold_activations(g: Graph, outputs: set[str], repair_fused_relu: bool) -> None:
    for name in list(g.order):
        node = g.nodes.get(name)
        if node is None:
            continue
        match = match_prelu(g, node, repair_fused_relu)
        if match is not None:
            node.op, node.inputs, node.act = "Act", [match[0]], ("prelu", match[1])
    prune(g, outputs)
    for node in list(g.nodes.values()):
        if node.op == "Relu":
            node.op, node.act = "Act", RELU
        elif node.op == "Relu6":
            node.op, node.act = "Act", ("clamp", 0.0, 6.0)
        elif node.op in ("Minimum", "Maximum"):
            split = g.split_const(node)
            if split is not None and np.asarray(split[1]).size == 1:
                v = float(np.asarray(split[1]).reshape(-1)[0])
                node.act = ("clamp", -math.inf, v) if node.op == "Minimum" else ("clamp", v, math.inf)
                node.op, node.inputs = "Act", [split[0]]
    changed = True
    while changed:
        changed = False
        for node in list(g.nodes.values()):
            if node.op != "Act" or node.name not in g.nodes:
                continue
            src = g.nodes.get(node.inputs[0])
            if src is None or src.op not in ("Conv", "Linear", "Act") or src.name in outputs:
                continue
            if g.sole_consumer(src.name) is not node:
                continue
            act = compose(src.act, node.act)
            if act is None:
                continue
            src.act = act
            absorb(g, src, node)
            changed = True

