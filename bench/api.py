"""The plug-in API: everything a method, adversary or target may take from the harness, and nothing else.

Modules of ``methods/``, ``attacks/`` and ``targets/`` import from ``bench`` only this module (a test walks
every plug-in module's imports: ``tests/plugins/test_plugin_contract.py``), and never import each other's package;
what they need of a run (device, seed, identity bank, cache folder, code versions) the run hands them in a context.

- contexts: :class:`RunContext` (``Method.bind``), :class:`AdversaryContext` (``Adversary.adapt``), :class:`Need`,
  :class:`ContextError`, and :class:`IdentityBank`, the type of what ``RunContext.identity_bank`` returns;
- base classes and their helpers (re-exported from each plug-in package's ``base`` module): ``Method``,
  ``Protector``, ``MaskProtector``, ``Budget``, ``Reported``, ``GOALS``, ``seeded_generator``, ``seeded``,
  ``batch_steps``; ``Adversary``; ``Target``, ``TorchTarget``, ``BlackBoxTarget``, ``TargetConfig``;
- registries: ``METHODS``, ``ADVERSARIES``, ``TARGETS``
  (``@METHODS.register("name", **preset)``), and the metric registry ``METRICS`` with :class:`Metric`;
- the canvas: its size, templates, face box, :class:`Framing`, 8-bit round trips;
- config checks: ``check_ranges`` with ``COUNT``, ``FRACTION``, ``Interval``, ``at_least``, ``positive``;
- image quality used inside optimisations: ``dssim``, ``get_lpips``;
- weights: ``WeightSpec``, ``ensure``, ``derived``, ``WeightError`` and the readers of user-supplied, ONNX and
  TensorFlow.js files; calibration files (``load_calibration``) for targets.

The base classes are resolved on first use (they import this module themselves).
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.core.checksums import IntegrityError
from bench.core.storage import save_torch, write_bytes
from bench.core.validation import COUNT, FRACTION, Interval, at_least, check_ranges, positive
from bench.data.canvas import (
    ARCFACE_112,
    CANVAS_OFFSET,
    CANVAS_SCALE,
    CANVAS_SIZE,
    CANVAS_TEMPLATE,
    FACE_BOX,
    Framing,
    face_region,
    from_uint8,
    to_uint8,
)
from bench.measures.calibration_store import calibrations, is_weak, load_calibration
from bench.measures.lpips import get_lpips
from bench.measures.quality import dssim
from bench.measures.registry import METRICS, Metric
from bench.models.onnx_tools import fold_file, free_batch_file
from bench.models.tfjs import compile_graph, load_graph_json, read_weights
from bench.models.tfjs.graphdef import read_frozen_graph
from bench.models.user_weights import load_into, load_state_dict, locate_user_file, user_file_status
from bench.models.weights import WeightError, WeightSpec, derived, ensure, recording, weight_status
from bench.registry import ADVERSARIES, METHODS, TARGETS, ConfigError
from bench.run.context import AdversaryContext, ContextError, IdentityBank, Need, RunContext

# name -> the plug-in base module that defines it (imported on first use: those modules import bench.api)
_BASES = {
    **dict.fromkeys(("Method", "Protector", "MaskProtector", "Budget", "Reported", "GOALS", "seeded_generator",
                     "seeded", "batch_steps"),
                    "methods.base"),
    **dict.fromkeys(("Adversary", "check_range", "per_photo"), "attacks.base"),
    **dict.fromkeys(("Target", "TorchTarget", "BlackBoxTarget", "TargetConfig", "NonFiniteEmbeddingError"),
                    "targets.base"),
}


def __getattr__(name: str) -> Any:
    module = _BASES.get(name)
    if module is None:
        raise AttributeError(f"bench.api has no {name!r}; the plug-in API is: {', '.join(sorted(__all__))}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    # contexts
    "RunContext", "AdversaryContext", "Need", "ContextError", "IdentityBank",
    # base classes
    *_BASES,
    # registries
    "METHODS", "ADVERSARIES", "TARGETS", "ConfigError", "METRICS", "Metric",
    # canvas
    "ARCFACE_112", "CANVAS_OFFSET", "CANVAS_SCALE", "CANVAS_SIZE", "CANVAS_TEMPLATE", "FACE_BOX", "Framing",
    "face_region", "from_uint8", "to_uint8",
    # config checks
    "COUNT", "FRACTION", "Interval", "at_least", "check_ranges", "positive",
    # quality inside optimisations
    "dssim", "get_lpips",
    # weights and calibration files
    "WeightSpec", "WeightError", "ensure", "derived", "recording", "weight_status", "load_into", "load_state_dict",
    "locate_user_file", "user_file_status", "fold_file", "free_batch_file", "compile_graph", "load_graph_json", "read_weights", "read_frozen_graph", "IntegrityError",
    "calibrations", "is_weak", "load_calibration",
    # files a plug-in writes: weights it converts, what an adversary caches (a full disk gives one clear error)
    "save_torch", "write_bytes",
]
