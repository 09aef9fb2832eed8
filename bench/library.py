"""The Python API: load a method or a target by name, align a photo, protect faces, run a suite.

``import bench`` re-exports these lazily (``bench.load_method``, ``bench.protect`` ...), so importing the package
loads no model and no plug-in; the first call does. docs/python-api.md shows them in use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from bench.data.faces import AlignedFace


_NAME_FIELDS = ("methods", "targets", "surrogates", "adversaries", "scenarios")


def load_method(name: str, **config: Any):
    """The registered method ``name`` with its preset config, ``config`` overriding single fields (unknown keys
    and ill-typed values raise :class:`bench.registry.ConfigError` naming the valid ones)."""
    from bench.registry import METHODS

    return METHODS.create(name, **config)


def load_target(name: str, device: str = "cpu"):
    """The registered face-recognition target ``name``, its weights fetched, verified and loaded: ready for
    ``target.embed(canvases)`` (N x 3 x H x W canvases in [0, 1] -> N x D unit embeddings)."""
    from bench.core.devices import resolve_device
    from bench.registry import TARGETS

    target = TARGETS.create(name, device=resolve_device(device))
    target.load()
    return target


def align(image: str | os.PathLike | np.ndarray | Any, device: str = "cpu") -> AlignedFace:
    """The first face of a photo (a path, an H x W x 3 uint8 RGB array or a PIL image), detected and aligned onto
    the benchmark's canvas: ``.canvas`` is the H x W x 3 uint8 face, ``.matrix`` maps photo pixels onto it.
    Raises :class:`bench.data.decoding.FaceError` when the photo has no usable face."""
    from bench.data.faces import Aligner

    aligner = Aligner(device=device, log=lambda _msg: None)
    if isinstance(image, (str, os.PathLike)):
        return aligner.align(image)
    import tempfile

    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    with tempfile.TemporaryDirectory() as tmp:  # the aligner reads files (its cache is keyed by their bytes)
        path = Path(tmp) / "photo.png"
        picture.convert("RGB").save(path)
        return aligner.align(path)


def faces_tensor(faces: Sequence[Any] | torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W float in [0, 1] from aligned faces, canvases (H x W x 3 uint8) or a tensor as it is."""
    import torch

    from bench.data.faces import canvases_to_tensor

    if isinstance(faces, torch.Tensor):
        return faces
    return canvases_to_tensor([getattr(f, "canvas", f) for f in faces])


def protect(method: Any, faces: Sequence[Any] | torch.Tensor, surrogates: Sequence[Any] = ("sface",),
            seed: int = 0, data_root: str | os.PathLike | None = None, device: str = "cpu") -> torch.Tensor:
    """Fit ``method`` (a name or a loaded method) on one user's ``faces`` against ``surrogates`` (names or loaded
    targets) and return the protected faces (N x 3 x H x W in [0, 1]). A method that needs an identity bank
    (Fawkes, TIP-IM ...) gets one from the people of ``data_root``, or of the built-in LFW subset when none is
    given, as ``bench protect`` does."""
    from bench.run.assembly import standalone_context

    method = load_method(method) if isinstance(method, str) else method
    loaded = [load_target(s, device) if isinstance(s, str) else s for s in surrogates]
    photos = faces_tensor(faces).to(loaded[0].device if hasattr(loaded[0], "device") else device)
    if method.needs():
        method = method.bind(standalone_context(data_root, device=device), seed)
    return method.fit(photos, loaded, seed).protect(photos)


def evaluate(suite: str = "smoke", out: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
             device: str = "cpu", threads: int = 1, **overrides: Any) -> pd.DataFrame:
    """Run a suite as ``bench run`` does (resuming from ``out``'s store) and return its results as
    :func:`load_results` gives them. ``overrides`` change the suite's fields (``methods=("pgd",)``, ``users=2``,
    ``method_overrides={"pgd": {"steps": 5}}`` ...); the run folder defaults to ``runs/<suite>``."""
    from bench.perf.estimate import cached_prices
    from bench.run.executors import LocalExecutor
    from bench.run.runner import Runner
    from bench.run.suites import get_suite

    # lists are taken for tuples (a suite is frozen and hashed into task keys); a bare name for a one-name tuple
    changes = {k: (v,) if isinstance(v, str) and k in _NAME_FIELDS else tuple(v) if isinstance(v, list) else v
               for k, v in overrides.items()}
    chosen = get_suite(suite).with_overrides(**changes)
    folder = Path(out or f"runs/{chosen.name}")
    Runner(chosen, folder, data_root=data_root, device=device, threads=threads, executor=LocalExecutor(),
           pricer=cached_prices).run()
    return load_results(folder)


def load_results(where: str | os.PathLike, per_user: bool = False) -> pd.DataFrame:
    """A run folder's (or a published results folder's) leaderboard as a tidy pandas DataFrame: see
    :func:`bench.report.results_frame.tidy`."""
    from bench.report.results_frame import load_board, tidy

    return tidy(load_board(where), per_user=per_user)


__all__ = ["align", "evaluate", "faces_tensor", "load_method", "load_results", "load_target", "protect"]
