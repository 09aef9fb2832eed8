"""Run a suite: prepare the data, load the plug-ins, plan the task graph, hand it to an executor.

The parts, one job each:
- ``bench.run.provenance``: content keys, code versions, the environment a run records;
- ``bench.run.prepare``: users, splits, aligned canvases (``Prepared``);
- ``bench.run.plugins``: plug-ins checked, created, loaded and described; ``bench.run.assembly``: the data root
  located once and the plug-ins bound to the run context (``bench.run.context``, ``bench.run.identity_bank``);
- ``bench.run.plan``: the pure planner (a suite and descriptions in, a graph of content-keyed tasks out);
- ``bench.run.tasks``: task bodies, plain functions over explicit inputs, run on a frozen ``bench.run.workspace.Workspace``;
- ``bench.run.executors``: who runs the tasks (``LocalExecutor`` today) and how outcomes are recorded.

A task's key hashes its inputs, config and code version; finished keys are skipped on a rerun, and a changed
config recomputes only the tasks it touches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.devices import default_threads, resolve_device
from bench.core.progress import Reporter
from bench.core.work_log import WorkLog
from bench.data.canvas import to_uint8
from bench.data.datasets import DataSource, locate_data
from bench.data.faces import Aligner
from bench.measures.lpips import converted_weights as lpips_weights
from bench.models.weights import WeightError
from bench.registry import TARGETS, UnknownNameError
from bench.run.artifacts import ArtifactReader
from bench.run.assembly import bind_plugins, run_context
from bench.run.executors import Executor, LocalExecutor
from bench.run.folder_lock import run_lock
from bench.run.plan import Plugins, TaskGraph, plan_run
from bench.run.plugins import (
    describe_targets,
    expand,
    load_targets,
    surrogate_ids,
    surrogate_twins,
    validate_names,
)
from bench.run.prepare import Prepared, check_run_request, prepare_data
from bench.run.provenance import content_key, environment, record_invocation
from bench.run.store import RunStore
from bench.run.suites import Suite
from bench.run.workspace import RunCaches, Workspace


@dataclass
class Prices:
    """A run's tasks priced for its ETA: seconds by task label, and the plug-ins (kind/name) whose rate is from a
    dry run of an earlier version of them (their code or settings changed since)."""

    tasks: dict[str, float]
    earlier: list[str] = field(default_factory=list)


# (suite, the run's task graph, its workspace, device, threads) -> its tasks' prices, None where a rate was never
# measured (``bench.perf.estimate.cached_prices``, which the CLI and the Python API pass)
Pricer = Callable[[Suite, TaskGraph, Workspace, str, int], "Prices | None"]


class Runner:
    def __init__(
        self, suite: Suite, run_dir: str | os.PathLike, data_root: str | None = None, device: str = "auto",
        threads: int | None = None, reporter: Reporter | None = None, executor: Executor | None = None,
        wait: bool = True, store: RunStore | ArtifactReader | None = None, pricer: Pricer | None = None,
    ):
        self.suite = suite
        self.run_dir = Path(run_dir)
        # a worker of a distributed executor reads artifacts and never writes the store (``ArtifactReader``)
        self._store = store
        self.wait = wait  # another run holds the folder: wait for it (True) or stop at once
        self.data_root = data_root
        # "auto" picks CUDA when it is there; an explicit device is checked with the rest of the request in run()
        self.device = resolve_device(device) if device in (None, "", "auto") else device
        self.threads = default_threads() if threads is None else threads
        self.reporter = reporter or Reporter()
        self.executor = executor or LocalExecutor()
        self.pricer = pricer  # prices the tasks for the ETA and `bench status` (None: they count alike)
        self.unavailable: dict[str, str] = {}  # target name -> reason
        self.work = WorkLog()  # alignments and clean embeddings, to show recomputations (bench.core.work_log)

    @property
    def store(self) -> RunStore:
        """The run store, opened (and the run folder made) on first use: a refused run writes nothing."""
        if self._store is None:
            self._store = RunStore(self.run_dir)
        return self._store

    def step(self, label: str, done: int, total: int) -> None:
        """A step inside the task under way: recorded for `bench status`, shown by the reporter."""
        self.store.note_step(label, done, total)
        self.reporter.step(label, done, total)

    def load_models(self) -> tuple[dict[str, Any], list[Any]]:
        """Evaluated targets and surrogates, weights fetched and verified: before any face is detected."""
        suite = self.suite
        targets = load_targets(expand(suite.targets, TARGETS), self.device, self.unavailable, self.reporter)
        extra = load_targets([s for s in suite.surrogates if s not in targets], self.device, self.unavailable,
                             self.reporter)
        surrogates = [targets.get(s) or extra.get(s) for s in suite.surrogates]
        surrogates = [s for s in surrogates if s is not None]  # the unavailable ones were reported by load_targets
        try:  # LPIPS, a quality measure of every run, fetched if need be and verified now, not in the first task
            lpips_weights()
        except WeightError as exc:
            raise ValueError(f"LPIPS weights: {exc}") from exc
        if not surrogates:
            why = "; ".join(f"{name}: {self.unavailable[name]}" for name in suite.surrogates if name in self.unavailable)
            raise ValueError(f"none of the surrogates {list(suite.surrogates)} is available and differentiable"
                             + (f" ({why})" if why else ""))
        if not suite.white_box:
            clash = [t for t in targets.values() if t.name in suite.surrogates or surrogate_twins(t, surrogates)]
            if clash:
                raise ValueError(f"evaluated targets {[t.name for t in clash]} are surrogates or run a surrogate's "
                                 "weights; set white_box=True to allow it")
        return targets, surrogates

    def load_plugins(self, source: DataSource, aligner: Aligner, data: Prepared, targets: dict[str, Any],
                     surrogates: list[Any]) -> tuple[Workspace, Plugins]:
        """Methods (bound to the run context, needs resolved) and adversaries, beside the loaded models."""
        suite = self.suite
        context = run_context(source, data.users, aligner, self.device, suite.split.seed,
                              cache_dir=self.store.run_dir / "cache", reporter=self.reporter,
                              on_progress=self.step)
        bound = bind_plugins(suite, context, self.reporter)
        workspace = Workspace(data, self.device, tuple(suite.scenarios), suite.quantize, context, bound.methods,
                              targets, bound.adversaries, tuple(surrogates), self.store.load_artifact,
                              RunCaches(self.work, self.reporter.message), protocol=suite.protocol,
                              space=suite.space, photo_jpeg_quality=suite.photo_jpeg_quality)
        described = describe_targets(targets, surrogates, suite, source.lfw_fingerprint(), self.reporter)
        plugins = Plugins(bound.method_infos, described, bound.adversary_infos, surrogate_ids(surrogates),
                          dict(self.unavailable), self.device)
        return workspace, plugins

    def prepare(self, targets: dict[str, Any], surrogates: list[Any],
                source: DataSource | None = None) -> tuple[Workspace, Plugins]:
        """The data and the plug-ins: what the task bodies run on (a distributed executor's workers call this
        too, on the same suite and data root, and read the alignment cache the driver filled). ``source``: the
        data root as ``run`` already located it (located here when None)."""
        source = source or locate_data(self.data_root, self.suite.dataset)
        self.reporter.message(f"data: {source.root} ({source.how})")
        aligner = Aligner(device=self.device, log=self.reporter.message, work=self.work)
        data = prepare_data(self.suite, source.dataset, aligner, self.store.skip, self.reporter)
        return self.load_plugins(source, aligner, data, targets, surrogates)

    def run(self) -> dict[str, Any]:
        # Everything that can be checked without compute comes first, weights before any face detection, and
        # nothing is written until it all passes.
        source = check_run_request(self.suite, self.run_dir, self.data_root, self.device, self.threads)
        torch.set_num_threads(self.threads)
        validate_names(self.suite)
        targets, surrogates = self.load_models()
        with run_lock(self.run_dir, wait=self.wait, on_wait=self.reporter.message):
            return self._run_locked(targets, surrogates, source)

    def _run_locked(self, targets: dict[str, Any], surrogates: list[Any], source: DataSource) -> dict[str, Any]:
        self.store.set_meta("suite", self.suite.as_dict())
        env = environment(self.device, self.threads)
        self.store.set_meta("environment", env)
        record_invocation(self.store, env)
        workspace, plugins = self.prepare(targets, surrogates, source)
        data = workspace.data
        graph = plan_run(self.suite, data.describe(), plugins)
        plan = graph.meta
        plan["surrogates"] = [s.name for s in workspace.surrogates]
        plan["device"] = self.device
        plan["data"] = {"root": str(data.dataset.root), "identities": len(data.splits), "users": len(data.users),
                        "skipped": len(self.store.skipped())}
        self.store.set_meta("plan", plan)
        prices = self.prices(graph, workspace)
        # what `bench status` reads while this invocation runs: its tasks and their prices
        self.store.set_meta("planned", {"started": time.time(), "git_revision": env.get("git_revision"),
                                        "tasks": [[t.key, t.kind, t.label] for t in graph.tasks], "prices": prices})
        self.reporter.expect(prices)
        self.executor.run(graph.tasks, workspace, self.store, self.reporter)
        self.store.set_meta("work", self.work.summary())
        self.write_examples(graph, data)
        return plan

    def prices(self, graph: TaskGraph, workspace: Workspace) -> dict[str, float]:
        """The tasks still to run, priced by label (``pricer``: from the rates a dry run measured on this machine,
        ``bench.perf.estimate.cached_prices``), for the ETA and ``bench status``; none without a pricer or where
        a rate is missing, and the tasks then count alike."""
        done = self.store.done_keys()
        todo = [t for t in graph.tasks if t.key not in done]
        if not todo or self.pricer is None:
            return {}
        prices = self.pricer(self.suite, graph, workspace, self.device, self.threads)
        dry_run = "`bench run` with the same suite, device and threads and `--dry-run`"
        if prices is None:
            self.reporter.message(f"ETA: every task counted alike ({dry_run} prices each task on this machine, and "
                                  "the ETA then weighs them by it)")
            return {}
        self.reporter.message("ETA: each task weighed by its dry-run price" + (
            f"; the rates of {', '.join(prices.earlier)} are from before a change to their code or settings "
            f"({dry_run} measures them again)" if prices.earlier else ""))
        return {t.label: prices.tasks[t.label] for t in todo if t.label in prices.tasks}

    def write_examples(self, graph: TaskGraph, data: Prepared) -> None:
        """A few clean / protected canvases per method (first user, first seed) for the report."""
        out = self.store.run_dir / "examples"
        out.mkdir(exist_ok=True)
        for mname, entry in graph.meta["methods"].items():
            keys = next(iter(entry.get("protect", {}).values()), {})
            for user, key in keys.items():
                if not self.store.is_done(key):
                    continue
                protected = self.store.load_artifact(key)["protected"][: self.suite.examples]
                clean = data.stack(data.splits[user].probe)[: len(protected)]
                if protected.dtype != torch.uint8:
                    protected = to_uint8(protected)
                np.savez_compressed(out / f"{mname}.npz", clean=clean.permute(0, 2, 3, 1).numpy(),
                                    protected=protected.permute(0, 2, 3, 1).numpy())
                break


__all__ = ["Runner", "Prices", "Reporter", "content_key", "surrogate_twins", "UnknownNameError"]
