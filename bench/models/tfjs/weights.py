"""TF.js weights: manifests and their ``.bin`` shards, decoded to numpy arrays by tensor name.

A manifest (``*-weights_manifest.json``, or the ``weightsManifest`` of a ``model.json``) is a list of groups, each
naming its ``.bin`` shards (concatenated in order) and its tensors in order. A tensor is stored as its own
``dtype`` (float32, int32), or as ``quantization.dtype`` uint8 / uint16 (``value = q * scale + min``) or
float16. :func:`read_weights` returns float32 / int32 numpy arrays by tensor name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


class TFJSError(ValueError):
    """A TF.js file that cannot be read or a graph op this compiler does not handle."""



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

