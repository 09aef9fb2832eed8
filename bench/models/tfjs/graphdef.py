"""Frozen TensorFlow graphs (``GraphDef`` protobuf, ``*.pb``) read without TensorFlow.

A frozen graph is a ``tensorflow.GraphDef`` message: its nodes (name, op, inputs, attributes), with every weight
a ``Const`` node holding a ``TensorProto``. TensorFlow's generated ``*_pb2`` modules are not needed: the
protobuf runtime parses the file against the subset of TensorFlow's schema declared below (field numbers from
``tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape}.proto``); fields outside it
(versions, function library, resource handles) are skipped as unknown fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.models.tfjs.weights import TFJSError

# message -> (field, number, type, repeated); a type is a scalar type name or another message of the schema.
# ``NodeDef.attr`` is a map<string, AttrValue>: on the wire, a repeated (key = 1, value = 2) entry message.
# ``AttrValue``'s fields form its oneof ``value``.
_SCHEMA: dict[str, list[tuple[str, int, str, bool]]] = {
    "GraphDef": [("node", 1, "NodeDef", True)],
    "NodeDef": [("name", 1, "string", False), ("op", 2, "string", False), ("input", 3, "string", True),
                ("attr", 5, "AttrEntry", True)],
    "AttrEntry": [("key", 1, "string", False), ("value", 2, "AttrValue", False)],
    "AttrValue": [("list", 1, "ListValue", False), ("s", 2, "bytes", False), ("i", 3, "int64", False),
                  ("f", 4, "float", False), ("b", 5, "bool", False), ("type", 6, "int32", False),
                  ("shape", 7, "TensorShape", False), ("tensor", 8, "Tensor", False)],
    "ListValue": [("s", 2, "bytes", True), ("i", 3, "int64", True), ("f", 4, "float", True),
                  ("b", 5, "bool", True), ("type", 6, "int32", True)],
    "TensorShape": [("dim", 2, "Dim", True), ("unknown_rank", 3, "bool", False)],
    "Dim": [("size", 1, "int64", False)],
    "Tensor": [("dtype", 1, "int32", False), ("tensor_shape", 2, "TensorShape", False),
               ("tensor_content", 4, "bytes", False), ("float_val", 5, "float", True),
               ("double_val", 6, "double", True), ("int_val", 7, "int32", True), ("int64_val", 10, "int64", True),
               ("bool_val", 11, "bool", True)],
}

# TensorFlow DataType enum -> numpy; ``*_val`` field holding values of that type when there is no raw content
_DTYPES = {1: (np.float32, "float_val"), 2: (np.float64, "double_val"), 3: (np.int32, "int_val"),
           4: (np.uint8, "int_val"), 9: (np.int64, "int64_val"), 10: (np.bool_, "bool_val")}


@cache
def _graphdef_class() -> type:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    scalars = {"string": field.TYPE_STRING, "bytes": field.TYPE_BYTES, "int64": field.TYPE_INT64,
               "int32": field.TYPE_INT32, "float": field.TYPE_FLOAT, "double": field.TYPE_DOUBLE,
               "bool": field.TYPE_BOOL}
    proto = descriptor_pb2.FileDescriptorProto(name="cloakbench/tf_graphdef.proto", package="cloakbench_tf",
                                               syntax="proto3")
    for message, fields in _SCHEMA.items():
        msg = proto.message_type.add(name=message)
        if message == "AttrValue":
            msg.oneof_decl.add(name="value")
        for name, number, kind, repeated in fields:
            f = msg.field.add(name=name, number=number,
                              label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL)
            if message == "AttrValue":
                f.oneof_index = 0
            if kind in scalars:
                f.type = scalars[kind]
            else:
                f.type, f.type_name = field.TYPE_MESSAGE, f".cloakbench_tf.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("cloakbench_tf.GraphDef"))


def tensor_value(tensor: Any) -> np.ndarray:
    """A ``TensorProto`` as a numpy array (raw little-endian content, or the typed value list, broadcast)."""
    if tensor.dtype not in _DTYPES:
        raise TFJSError(f"tensor of TensorFlow dtype {tensor.dtype} is not supported")
    dtype, values_field = _DTYPES[tensor.dtype]
    shape = [int(d.size) for d in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    values = np.asarray(list(getattr(tensor, values_field)), dtype)
    count = int(np.prod(shape)) if shape else 1
    if values.size == count:
        return values.reshape(shape)
    if values.size == 1:  # TensorFlow stores a constant fill as its single value
        return np.full(shape, values[0], dtype)
    raise TFJSError(f"tensor holds {values.size} values for shape {shape}")


def _attr_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "list":
        lst = value.list
        for key in ("i", "f", "s", "b", "type"):
            items = list(getattr(lst, key))
            if items:
                return [v.decode() for v in items] if key == "s" else items
        return []
    if kind == "s":
        return value.s.decode(errors="replace")
    if kind == "shape":
        return [int(d.size) for d in value.shape.dim]
    if kind == "tensor":
        return tensor_value(value.tensor)
    return getattr(value, kind)


@dataclass
class FrozenGraph:
    """The nodes of a frozen graph in file order, and its constants by node name."""

    nodes: list[dict[str, Any]]  # name, op, inputs (control inputs and ``:0`` dropped), attr
    constants: dict[str, np.ndarray]

    def node(self, name: str) -> dict[str, Any]:
        for n in self.nodes:
            if n["name"] == name:
                return n
        raise TFJSError(f"the graph has no node {name!r}")


def read_frozen_graph(path: str | Path) -> FrozenGraph:
    """Parse a frozen ``GraphDef`` file; a file that is not one gets a :class:`TFJSError` saying so."""
    from google.protobuf.message import DecodeError

    graph = _graphdef_class()()
    try:
        graph.ParseFromString(Path(path).read_bytes())
    except DecodeError as exc:
        raise TFJSError(f"{path} is not a TensorFlow GraphDef protobuf ({exc})") from exc
    if not graph.node:
        raise TFJSError(f"{path} holds no graph nodes: not a frozen TensorFlow graph")
    nodes, constants = [], {}
    for raw in graph.node:
        attr = {entry.key: entry.value for entry in raw.attr}
        node = {"name": raw.name, "op": raw.op,
                "inputs": [i.split(":")[0] for i in raw.input if not i.startswith("^")],
                "attr": {k: _attr_value(v) for k, v in attr.items() if k != "value"}}
        if raw.op == "Const":
            if "value" not in attr:
                raise TFJSError(f"constant {raw.name!r} has no value")
            constants[raw.name] = tensor_value(attr["value"].tensor)
        nodes.append(node)
    return FrozenGraph(nodes, constants)
