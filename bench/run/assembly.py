"""One assembly step: a suite, a data root, a device and a run folder in; the data, the plug-ins bound to the run
context, and that context out. `bench run` (``Runner``), its workers (``bench.run.ray_executor``, through
``Runner.prepare``), the dry run (``bench.perf.estimate``), `bench perf`'s naive loop (``bench.perf.run_measures``) and
`bench protect` all assemble here, so that they agree on what a method is handed.

- :func:`locate_data` resolves the data root once and lists the suite's identity folders once (``DataSource``);
  the request check, the split, the identity bank and the calibration fingerprint all read that listing.
- :func:`run_context` is the context plug-ins get: device, seed, data root, cache folder, an identity bank
  of the data root's people who are not evaluated users, aligned by the run's aligner, and where the steps of
  long work inside a task go (the run's progress display and its store, for `bench status`).
- :func:`bind_plugins` creates the suite's methods (each declared need resolved to a digest) and adversaries.
  ``Method.bind(context, seed)`` returns a bound copy, so the configured instances here are never changed.
- :func:`standalone_context` is the same context outside a run (``bench protect``, notebooks): its identity bank
  comes from a data root, or from the LFW subset embedded in the package when none is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.progress import Reporter
from bench.data.datasets import DataError, DataSource, load_identity_folders, locate_data
from bench.run.context import RunContext
from bench.run.identity_bank import BankBuilder
from bench.run.plan import AdversaryInfo, MethodInfo
from bench.run.plugins import create_adversaries, create_methods
from bench.run.suites import Suite


def run_context(source: DataSource, users: list[str] | set[str], aligner: Any, device: str, seed: int,
                cache_dir: Path | None = None, reporter: Reporter | None = None,
                on_progress: Callable[[str, int, int], None] | None = None) -> RunContext:
    """What plug-ins get from a run: its identity bank holds people of ``source`` who are not ``users``. Steps
    inside a task go to ``on_progress``, by default the reporter's ``step``."""
    bank = BankBuilder(source.dataset, set(users), aligner, reporter)
    if on_progress is None and reporter is not None:
        on_progress = reporter.step
    return RunContext(device=device, seed=seed, data_root=source.root, cache_dir=cache_dir, bank_provider=bank.bank,
                      on_progress=on_progress)


@dataclass
class BoundPlugins:
    """The suite's methods and adversaries, created and described for the planner, beside their context."""

    context: RunContext
    methods: dict[str, Any]
    method_infos: list[MethodInfo]
    adversaries: dict[str, Any]
    adversary_infos: list[AdversaryInfo]


def bind_plugins(suite: Suite, context: RunContext, reporter: Reporter) -> BoundPlugins:
    methods, method_infos = create_methods(suite, context, reporter)
    adversaries, adversary_infos = create_adversaries(suite, context, reporter)
    return BoundPlugins(context, methods, method_infos, adversaries, adversary_infos)


def standalone_context(data_root: str | os.PathLike | None = None, device: str = "auto", dataset: str = "lfw",
                       exclude: tuple[str, ...] = (), cache_dir: Path | None = None,
                       aligner: Any = None, reporter: Reporter | None = None) -> RunContext:
    """A context for using a method outside a run: its identity bank comes from ``data_root`` (the people of
    ``dataset`` there, minus ``exclude``), or from the embedded LFW subset when ``data_root`` is None, aligned on
    ``device`` (``auto``: CUDA when present). It grants whatever the method declares. ``context.data_root``
    says which folder was used; ``reporter`` shows the bank's alignment and the plug-in's own progress."""
    from bench.core.devices import resolve_device
    from bench.core.paths import embedded_data_root
    from bench.data.faces import Aligner

    device = resolve_device(device)
    root = Path(data_root) if data_root is not None else embedded_data_root()
    if not root.is_dir():
        raise DataError(f"--data-root {root} is not a folder")
    source = DataSource(root, "--data-root" if data_root is not None else "embedded LFW subset",
                        load_identity_folders(root, dataset))
    return run_context(source, set(exclude), aligner or Aligner(device=device), device, seed=0, cache_dir=cache_dir,
                       reporter=reporter)


__all__ = ["DataSource", "locate_data", "run_context", "BoundPlugins", "bind_plugins", "standalone_context"]
