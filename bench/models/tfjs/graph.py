"""The TF graph as the compiler sees it: nodes with decoded attributes and constants, and graph walks."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.models.tfjs.weights import TFJSError


@dataclass
class Node:
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


def decode_attrs(node: dict) -> dict[str, Any]:
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


CONV_OPS = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}


class Graph:
    def __init__(self, model: dict, weights: dict[str, np.ndarray]):
        self.nodes: dict[str, Node] = {}
        for raw in model["modelTopology"]["node"]:
            inputs = [i.split(":")[0] for i in raw.get("input", []) if not i.startswith("^")]
            node = Node(raw["name"], raw["op"], inputs, decode_attrs(raw))
            if node.op == "Const":
                if node.name not in weights:
                    raise TFJSError(f"constant {node.name!r} has no entry in the weights manifest")
                node.const = weights[node.name]
            self.nodes[node.name] = node
        self.order = list(self.nodes)  # TF.js graph JSON lists nodes in a topological order

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes.values() if name in n.inputs]

    def const(self, name: str) -> np.ndarray | None:
        node = self.nodes.get(name)
        return node.const if node is not None and node.op == "Const" else None

    def sole_consumer(self, name: str) -> Node | None:
        users = self.consumers(name)
        return users[0] if len(users) == 1 else None

    def replace(self, old: str, new: str) -> None:
        """Consumers of ``old`` read ``new``; ``old`` is dropped."""
        for n in self.nodes.values():
            n.inputs = [new if i == old else i for i in n.inputs]
        self.nodes.pop(old, None)

    def split_const(self, node: Node) -> tuple[str, np.ndarray] | None:
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


def per_channel(c: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant that broadcasts along the channel axis only, as a length-``channels`` vector."""
    c = np.asarray(c, dtype=np.float32)
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]), np.float32)
    if c.size == channels and (c.ndim == 1 or all(s == 1 for s in c.shape[:-1])):
        return c.reshape(channels)
    return None


def prune(g: Graph, outputs: set[str]) -> None:
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


def topological(g: Graph, outputs: list[str]) -> list[Node]:
    order: list[Node] = []
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


def infer_ranks(nodes: list[Node], g: Graph) -> None:
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

