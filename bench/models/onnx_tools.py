"""ONNX helpers: block-quantised graphs (OpenCV Zoo's ``*_int8bq.onnx``) and graphs exported at batch 1.

onnx2torch and OpenCV refuse the block-quantised files as shipped: ``DequantizeLinear`` with ``block_size``
(opset 21) over constant initializers, constant ``Reshape`` of the result, and stale graph inputs that shadow
initializers. ``fold_constant_dequantize`` evaluates those constant nodes in numpy into float initializers and
sets opset 13. ``free_batch`` lets a graph whose flatten was exported as a ``Reshape`` to ``[1, -1]`` take any
batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    x = x.astype(np.float32)
    scale = scale.astype(np.float32)
    zero = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    if scale.ndim == 0:
        return (x - zero) * scale
    axis = axis % x.ndim
    if block > 0:  # blocked: scale has ceil(dim / block) entries along axis
        scale = np.repeat(scale, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(x.shape[axis]), axis=axis)
    else:  # per-axis: 1-D scale along axis
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (x - zero) * scale


def fold_constant_dequantize(model):
    """Return ``model`` with constant DequantizeLinear/Reshape folded into float initializers (opset 13)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    changed = True
    nodes = [n for n in graph.node if n.op_type != "Constant"]  # their values became initializers
    while changed:
        changed, kept = False, []
        for node in nodes:
            if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                zero = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                consts[node.output[0]] = _dequantize(
                    consts[node.input[0]], consts[node.input[1]], zero, attrs.get("axis", 1), attrs.get("block_size", 0)
                )
                changed = True
            elif node.op_type == "Reshape" and all(i in consts for i in node.input):
                consts[node.output[0]] = consts[node.input[0]].reshape(consts[node.input[1]].astype(np.int64))
                changed = True
            else:
                kept.append(node)
        nodes = kept
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    new_inits = [numpy_helper.from_array(np.asarray(v), name) for name, v in consts.items() if name in used]
    init_names = {i.name for i in new_inits}
    inputs = [i for i in graph.input if i.name not in init_names and i.name in used]
    new_graph = helper.make_graph(nodes, graph.name, inputs, list(graph.output), new_inits)
    out = helper.make_model(new_graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="cloakbench")
    out.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(out)
    return out


def fold_file(src: Path, dst: Path) -> None:
    import onnx

    onnx.save(fold_constant_dequantize(onnx.load(str(src))), str(dst))


def free_batch(model):
    """Return ``model`` (exported at batch 1) taking any batch: the first dimension of its inputs and outputs
    becomes symbolic, and constant ``Reshape`` targets that start with that batch of 1 copy the input's first
    dimension instead (0, in ONNX's Reshape)."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {init.name: i for i, init in enumerate(graph.initializer)}
    for value in [*[i for i in graph.input if i.name not in inits], *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        init = graph.initializer[inits[node.input[1]]]
        shape = numpy_helper.to_array(init).copy()
        if shape.size and shape[0] == 1:
            shape[0] = 0
            init.CopyFrom(numpy_helper.from_array(shape.astype(np.int64), init.name))
    onnx.checker.check_model(model)
    return model


def free_batch_file(src: Path, dst: Path) -> None:
    import onnx

    onnx.save(free_batch(onnx.load(str(src))), str(dst))
