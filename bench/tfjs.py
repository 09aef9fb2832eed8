"""TensorFlow.js models in torch: a weights reader and a graph-model compiler.

Weights (``*-weights_manifest.json``, or the ``weightsManifest`` of a ``model.json``): a list of groups, each
naming its ``.bin`` shards (concatenated in order) and its tensors in order. A tensor is stored as its own
``dtype`` (float32, int32), or as ``quantization.dtype`` uint8 / uint16 (``value = q * scale + min``) or
float16. :func:`read_weights` returns float32 / int32 numpy arrays by tensor name.

Graph models (``format: graph-model``): :func:`compile_graph` turns the TF graph into ordinary torch modules,
once, at load. Per-channel affine constants that follow a convolution (batch norm written as ``Mul`` + ``Add``)
are folded into its weight and bias, ``Relu``/``Minimum``/``Maximum`` chains become one clamp, the PReLU spellings
seen in converted models become ``nn.PReLU``, and constant zero ``Pad`` ops merge into the next convolution.
What remains is a short list of steps (about one per layer) run in NCHW; constants are permuted once.

Layouts: TF kernels are HWIO (torch OIHW: permute 3, 2, 0, 1); depthwise kernels are H x W x C x multiplier,
whose output channel ``c * multiplier + m`` is torch's grouped-convolution order. ``SAME`` padding pads the odd
pixel at the bottom/right.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TFJSError(ValueError):
    """A TF.js file that cannot be read or a graph op this compiler does not handle."""


# ----------------------------------------------------------------------------------------------------------
# weights


_STORED = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16,
           "float16": np.float16, "bool": np.bool_}


def manifest_groups(obj: Any) -> list[dict]:
    """The weight groups of a weights-manifest list or of a graph/layers ``model.json`` dict."""
    if isinstance(obj, dict):
        obj = obj.get("weightsManifest")
    if not isinstance(obj, list) or not all(isinstance(g, dict) and "weights" in g for g in obj):
        raise TFJSError("not a TF.js weights manifest: expected a list of {paths, weights} groups")
    return obj


def read_weights(manifest: Any, shards: Mapping[str, str | Path]) -> dict[str, np.ndarray]:
    """Decode every tensor of ``manifest``; ``shards`` maps each shard file name in ``paths`` to a local file."""
    out: dict[str, np.ndarray] = {}
    for group in manifest_groups(manifest):
        blobs = []
        for name in group.get("paths", []):
            key = Path(name).name
            if key not in shards:
                raise TFJSError(f"weight shard {name!r} of the manifest was not provided (have {sorted(shards)})")
            blobs.append(Path(shards[key]).read_bytes())
        data = b"".join(blobs)
        offset = 0
        for spec in group["weights"]:
            arr, offset = _decode(spec, data, offset)
            out[spec["name"]] = arr
        if offset != len(data):
            raise TFJSError(f"manifest describes {offset} bytes but its shards hold {len(data)}")
    return out


def _decode(spec: dict, data: bytes, offset: int) -> tuple[np.ndarray, int]:
    shape = [int(s) for s in spec.get("shape", [])]
    count = math.prod(shape)
    quant = spec.get("quantization")
    stored = (quant or {}).get("dtype", spec.get("dtype", "float32"))
    if stored not in _STORED:
        raise TFJSError(f"tensor {spec.get('name')!r}: unsupported stored dtype {stored!r}")
    dt = np.dtype(_STORED[stored]).newbyteorder("<")
    end = offset + count * dt.itemsize
    if end > len(data):
        raise TFJSError(f"tensor {spec.get('name')!r} runs past the end of its shards ({end} > {len(data)})")
    raw = np.frombuffer(data, dtype=dt, count=count, offset=offset)
    if quant and stored in ("uint8", "uint16"):
        arr = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
    elif spec.get("dtype") == "int32":
        arr = raw.astype(np.int32)
    else:
        arr = raw.astype(np.float32)
    return arr.reshape(shape), end


def load_graph_json(path: str | Path) -> dict:
    model = json.loads(Path(path).read_text())
    if model.get("format") != "graph-model" or "modelTopology" not in model:
        raise TFJSError(f"{path} is not a TF.js graph model (format={model.get('format')!r})")
    return model


# ----------------------------------------------------------------------------------------------------------
# graph IR


@dataclass
class _Node:
    name: str
    op: str
    inputs: list[str]
    attr: dict[str, Any]
    const: np.ndarray | None = None
    rank: int = 4  # rank of the value in TF (NHWC for 4)
    # filled while compiling a convolution / matmul
    weight: np.ndarray | None = None  # torch layout
    bias: np.ndarray | None = None
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, right, top, bottom (explicit, from Pad ops)
    act: tuple | None = None  # ("clamp", lo, hi) | ("prelu", alpha)
    extra: dict[str, Any] = field(default_factory=dict)


def _attr(node: dict) -> dict[str, Any]:
    out = {}
    for key, val in node.get("attr", {}).items():
        if "list" in val:
            lst = val["list"]
            if "i" in lst:
                out[key] = [int(v) for v in lst["i"]]
            elif "s" in lst:
                out[key] = [base64.b64decode(v).decode() for v in lst["s"]]
            elif "f" in lst:
                out[key] = [float(v) for v in lst["f"]]
            else:
                out[key] = []
        elif "s" in val:
            out[key] = base64.b64decode(val["s"]).decode()
        elif "b" in val:
            out[key] = bool(val["b"])
        elif "i" in val:
            out[key] = int(val["i"])
        elif "f" in val:
            out[key] = float(val["f"])
    return out


_CONV = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}


class _Graph:
    def __init__(self, model: dict, weights: dict[str, np.ndarray]):
        self.nodes: dict[str, _Node] = {}
        for raw in model["modelTopology"]["node"]:
            inputs = [i.split(":")[0] for i in raw.get("input", []) if not i.startswith("^")]
            node = _Node(raw["name"], raw["op"], inputs, _attr(raw))
            if node.op == "Const":
                if node.name not in weights:
                    raise TFJSError(f"constant {node.name!r} has no entry in the weights manifest")
                node.const = weights[node.name]
            self.nodes[node.name] = node
        self.order = list(self.nodes)  # TF.js graph JSON lists nodes in a topological order

    def consumers(self, name: str) -> list[_Node]:
        return [n for n in self.nodes.values() if name in n.inputs]

    def const(self, name: str) -> np.ndarray | None:
        node = self.nodes.get(name)
        return node.const if node is not None and node.op == "Const" else None

    def sole_consumer(self, name: str) -> _Node | None:
        users = self.consumers(name)
        return users[0] if len(users) == 1 else None

    def replace(self, old: str, new: str) -> None:
        """Consumers of ``old`` read ``new``; ``old`` is dropped."""
        for n in self.nodes.values():
            n.inputs = [new if i == old else i for i in n.inputs]
        self.nodes.pop(old, None)

    def split_const(self, node: _Node) -> tuple[str, np.ndarray] | None:
        """(variable input, constant) of a binary op with exactly one constant side."""
        if len(node.inputs) != 2:
            return None
        a, b = node.inputs
        ca, cb = self.const(a), self.const(b)
        if cb is not None and ca is None:
            return a, cb
        if ca is not None and cb is None:
            return b, ca
        return None


def _per_channel(c: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant that broadcasts along the channel axis only, as a length-``channels`` vector."""
    c = np.asarray(c, dtype=np.float32)
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]), np.float32)
    if c.size == channels and (c.ndim == 1 or all(s == 1 for s in c.shape[:-1])):
        return c.reshape(channels)
    return None


# ----------------------------------------------------------------------------------------------------------
# compile passes


def _prepare_convs(g: _Graph) -> None:
    for node in list(g.nodes.values()):
        if node.op not in _CONV:
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


def _prepare_matmuls(g: _Graph) -> None:
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


def _fold_pads(g: _Graph) -> None:
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


def _absorb(g: _Graph, keep: _Node, gone: _Node) -> None:
    """``keep`` (whose sole consumer is ``gone``) now computes ``gone``'s value and takes its name."""
    g.nodes.pop(gone.name)
    g.nodes.pop(keep.name)
    keep.name = gone.name
    g.nodes[keep.name] = keep


def _fold_affine(g: _Graph, outputs: set[str]) -> None:
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
            c = _per_channel(split[1], node.weight.shape[0])
            if c is None:
                continue
            if user.op == "Mul":
                node.weight = node.weight * c.reshape(-1, *([1] * (node.weight.ndim - 1)))
                node.bias = node.bias * c
            else:
                node.bias = node.bias + (-c if user.op == "Sub" else c)
            _absorb(g, node, user)
            changed = True


def _match_prelu(g: _Graph, add: _Node, repair_fused_relu: bool) -> tuple[str, np.ndarray] | None:
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


def _compose(first: tuple, then: tuple) -> tuple | None:
    """One activation equal to ``then(first(x))``, if there is one (clamps compose into a clamp)."""
    if first is None:
        return then
    if first[0] == "clamp" and then[0] == "clamp":
        _, lo, hi = first
        _, lo2, hi2 = then
        return ("clamp", min(max(lo, lo2), hi2), min(max(hi, lo2), hi2))
    return None


def _fold_activations(g: _Graph, outputs: set[str], repair_fused_relu: bool) -> None:
    for name in list(g.order):
        node = g.nodes.get(name)
        if node is None:
            continue
        match = _match_prelu(g, node, repair_fused_relu)
        if match is not None:
            node.op, node.inputs, node.act = "Act", [match[0]], ("prelu", match[1])
    _prune(g, outputs)
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
            act = _compose(src.act, node.act)
            if act is None:
                continue
            src.act = act
            _absorb(g, src, node)
            changed = True


def _prune(g: _Graph, outputs: set[str]) -> None:
    """Drop every node that no output depends on."""
    live: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in live:
            continue
        if name not in g.nodes:
            raise TFJSError(f"graph has no node {name!r}")
        live.add(name)
        stack.extend(g.nodes[name].inputs)
    for name in list(g.nodes):
        if name not in live:
            del g.nodes[name]


def _topological(g: _Graph, outputs: list[str]) -> list[_Node]:
    order: list[_Node] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        stack = [(name, False)]
        while stack:
            cur, done = stack.pop()
            if done:
                order.append(g.nodes[cur])
                continue
            if cur in seen:
                continue
            seen.add(cur)
            stack.append((cur, True))
            stack.extend((i, False) for i in reversed(g.nodes[cur].inputs) if i not in seen)

    for out in outputs:
        visit(out)
    return order


def _infer_ranks(nodes: list[_Node], g: _Graph) -> None:
    rank: dict[str, int] = {}
    for node in nodes:
        ins = [rank.get(i, np.asarray(g.const(i)).ndim if g.const(i) is not None else 4) for i in node.inputs]
        if node.op == "Const":
            node.rank = np.asarray(node.const).ndim
        elif node.op == "Placeholder":
            dims = node.attr.get("shape")
            node.rank = 4
            if isinstance(dims, dict):
                node.rank = len(dims.get("dim", [None] * 4))
        elif node.op == "Linear":
            node.rank = 2
        elif node.op in ("Mean", "Sum") and not node.attr.get("keep_dims", False):
            axes = np.asarray(g.const(node.inputs[1])).reshape(-1)
            node.rank = ins[0] - len(axes) if axes.size else 0
        elif node.op == "Squeeze":
            node.rank = ins[0] - len(node.attr.get("squeeze_dims", [])) if node.attr.get("squeeze_dims") else 2
        elif node.op == "Reshape":
            node.rank = int(np.asarray(g.const(node.inputs[1])).size)
        else:
            node.rank = max(ins) if ins else 0
        rank[node.name] = node.rank


# ----------------------------------------------------------------------------------------------------------
# torch modules


class _Act(nn.Module):
    """Clamp (ReLU, ReLU6, min/max with a constant) or PReLU; ``inplace`` only on a fresh conv/matmul output."""

    def __init__(self, act: tuple | None, inplace: bool = False):
        super().__init__()
        self.kind = act[0] if act else None
        self.inplace = inplace
        if self.kind == "clamp":
            self.lo = None if act[1] == -math.inf else float(act[1])
            self.hi = None if act[2] == math.inf else float(act[2])
        elif self.kind == "prelu":
            self.register_buffer("alpha", torch.tensor(np.asarray(act[1], np.float32).reshape(-1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "clamp":
            if self.inplace:  # saves an allocation per layer; autograd allows it (conv backward needs no output)
                return x.clamp_(self.lo, self.hi)
            return x.clamp(self.lo, self.hi)
        if self.kind == "prelu":
            return F.prelu(x, self.alpha)  # channel axis 1 in NCHW and in N x C
        return x


class _Conv(nn.Module):
    """A TF convolution (regular or depthwise) with folded affine, explicit/SAME padding and an activation."""

    def __init__(self, node: _Node):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(node.weight, dtype=torch.float32), requires_grad=False)
        self.bias = nn.Parameter(torch.tensor(node.bias, dtype=torch.float32), requires_grad=False)
        self.stride = tuple(int(s) for s in node.extra["stride"])
        self.groups = int(node.extra["groups"])
        self.same = bool(node.extra["same"])
        self.pads = node.pads
        self.act = _Act(node.act, inplace=True)

    def _same_pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        kh, kw = self.weight.shape[2:]
        sh, sw = self.stride
        th = max((math.ceil(h / sh) - 1) * sh + kh - h, 0)
        tw = max((math.ceil(w / sw) - 1) * sw + kw - w, 0)
        return tw // 2, tw - tw // 2, th // 2, th - th // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = self.pads
        if self.same:
            sl, sr, st, sb = self._same_pads(x.shape[2] + top + bottom, x.shape[3] + left + right)
            left, right, top, bottom = left + sl, right + sr, top + st, bottom + sb
        if left == right and top == bottom:
            y = F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, self.groups)
        else:
            y = F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, 0, 1,
                         self.groups)
        return self.act(y)


class _Linear(nn.Module):
    def __init__(self, node: _Node):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(node.weight, dtype=torch.float32), requires_grad=False)
        self.bias = nn.Parameter(torch.tensor(node.bias, dtype=torch.float32), requires_grad=False)
        self.act = _Act(node.act, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(F.linear(x, self.weight, self.bias))


def _nchw_axes(axes: np.ndarray, rank: int) -> list[int]:
    """TF (NHWC) axes of a rank-4 value as torch NCHW axes; other ranks are unchanged."""
    axes = [int(a) % rank for a in np.asarray(axes).reshape(-1)]
    if rank != 4:
        return axes
    return [{0: 0, 1: 2, 2: 3, 3: 1}[a] for a in axes]


class _Binary(nn.Module):
    """Elementwise Add/Sub/Mul/Maximum/Minimum of two values or of a value and a constant."""

    _FNS = {"Add": torch.add, "AddV2": torch.add, "Sub": torch.sub, "Mul": torch.mul,
            "Maximum": torch.maximum, "Minimum": torch.minimum}

    def __init__(self, op: str, const: np.ndarray | None, const_first: bool, rank: int):
        super().__init__()
        if op not in self._FNS:
            raise TFJSError(f"elementwise op {op!r} is not supported")
        self.fn = self._FNS[op]
        self.const_first = const_first
        self.has_const = const is not None
        if const is not None:
            c = torch.tensor(np.asarray(const, np.float32))
            if rank == 4 and c.ndim >= 1 and c.shape[-1] > 1:  # channel-last constant -> NCHW broadcast
                c = c.reshape(-1, 1, 1)
            self.register_buffer("const", c)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if self.has_const:
            return self.fn(self.const, a) if self.const_first else self.fn(a, self.const)
        return self.fn(a, b)


class _Unary(nn.Module):
    def __init__(self, node: _Node, g: _Graph, in_rank: int):
        super().__init__()
        self.op = node.op
        self.in_rank = in_rank
        self.keep = bool(node.attr.get("keep_dims", False))
        self.axes: list[int] = []
        if node.op in ("Mean", "Sum"):
            axes = g.const(node.inputs[1])
            self.axes = _nchw_axes(axes, in_rank) if np.asarray(axes).size else list(range(in_rank))
        elif node.op == "Squeeze":
            self.axes = _nchw_axes(np.asarray(node.attr.get("squeeze_dims", [])), in_rank)
        elif node.op == "Reshape":
            self.shape = [int(s) for s in np.asarray(g.const(node.inputs[1])).reshape(-1)]
        elif node.op not in ("Abs", "Square", "Rsqrt", "Sigmoid", "Softmax", "Identity", "Act"):
            raise TFJSError(f"op {node.op!r} ({node.name}) is not supported")
        self.act = _Act(node.act) if node.op == "Act" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = self.op
        if op == "Act":
            return self.act(x)
        if op == "Mean":
            return x.mean(dim=self.axes, keepdim=self.keep)
        if op == "Sum":
            return x.sum(dim=self.axes, keepdim=self.keep)
        if op == "Squeeze":
            return x.squeeze(self.axes) if self.axes else x.squeeze()
        if op == "Reshape":
            if x.ndim == 4:  # TF flattens in NHWC order
                x = x.permute(0, 2, 3, 1)
            return x.reshape(self.shape)
        if op == "Abs":
            return x.abs()
        if op == "Square":
            return x * x
        if op == "Rsqrt":
            return torch.rsqrt(x)
        if op == "Sigmoid":
            return torch.sigmoid(x)
        if op == "Softmax":
            return torch.softmax(x, dim=-1 if x.ndim != 4 else 1)
        return x


class GraphModule(nn.Module):
    """A compiled TF.js graph: NCHW float input (the graph's NHWC placeholder, transposed) -> named outputs."""

    def __init__(self, steps: list[tuple[str, nn.Module, list[str]]], input_name: str, outputs: list[str],
                 last_use: dict[str, int]):
        super().__init__()
        self.input_name = input_name
        self.outputs = outputs
        self.names = [s[0] for s in steps]
        self.args = [s[2] for s in steps]
        self.steps = nn.ModuleList([s[1] for s in steps])
        self.last_use = last_use

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        # channels-last runs these (mostly depthwise + 1x1) convolutions ~1.5x faster on CPU (oneDNN)
        env = {self.input_name: x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x}
        keep = set(self.outputs)
        for i, (name, step, args) in enumerate(zip(self.names, self.steps, self.args, strict=True)):
            env[name] = step(*[env[a] for a in args])
            for a in args:  # free intermediates as soon as their last reader has run
                if self.last_use.get(a) == i and a not in keep:
                    del env[a]
        outs = tuple(env[o] for o in self.outputs)
        return outs[0] if len(outs) == 1 else outs

    def extra_repr(self) -> str:
        return f"input={self.input_name!r}, outputs={self.outputs}, steps={len(self.steps)}"


def compile_graph(model: dict, weights: dict[str, np.ndarray], outputs: list[str],
                  repair_fused_relu: bool = False) -> GraphModule:
    """Build the torch modules of ``outputs`` of a TF.js graph model, folding what can be folded.

    ``repair_fused_relu``: undo a Relu the converter fused into a convolution whose pre-activation value also
    feeds the negative branch of a TF-slim PReLU (see :func:`_match_prelu`).
    """
    g = _Graph(model, weights)
    out_set = set(outputs)
    _prune(g, out_set)
    _prepare_convs(g)
    _prepare_matmuls(g)
    _fold_pads(g)
    _fold_affine(g, out_set)
    _fold_activations(g, out_set, repair_fused_relu)
    _prune(g, out_set)
    nodes = _topological(g, outputs)
    _infer_ranks(nodes, g)
    rank = {n.name: n.rank for n in nodes}
    placeholders = [n for n in nodes if n.op == "Placeholder"]
    if len(placeholders) != 1:
        raise TFJSError(f"expected one graph input, found {[n.name for n in placeholders]}")
    steps: list[tuple[str, nn.Module, list[str]]] = []
    for node in nodes:
        if node.op in ("Placeholder", "Const"):
            continue
        if node.op == "Conv":
            steps.append((node.name, _Conv(node), node.inputs))
        elif node.op == "Linear":
            steps.append((node.name, _Linear(node), node.inputs))
        elif node.op in _Binary._FNS or node.op == "BiasAdd":
            op = "Add" if node.op == "BiasAdd" else node.op
            split = g.split_const(node)
            if split is not None:
                src, c = split
                steps.append((node.name, _Binary(op, c, node.inputs[0] != src, rank[src]), [src]))
            else:
                steps.append((node.name, _Binary(op, None, False, node.rank), node.inputs))
        else:
            data = [i for i in node.inputs if g.const(i) is None][:1]
            steps.append((node.name, _Unary(node, g, rank[data[0]]), data))
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
