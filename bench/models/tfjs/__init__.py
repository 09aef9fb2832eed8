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

from bench.models.tfjs.compiler import compile_graph, load_graph_model
from bench.models.tfjs.modules import GraphModule
from bench.models.tfjs.weights import TFJSError, load_graph_json, manifest_groups, read_weights

__all__ = ["GraphModule", "TFJSError", "compile_graph", "load_graph_json", "load_graph_model", "manifest_groups",
           "read_weights"]
