"""The Ray executor: a run's tasks as Ray tasks, on this machine or a cluster (``pip install 'cloakbench[ray]'``).

- The driver (``bench run --executor ray [--address ...]``) prepares the data, plans, and is the run store's one
  writer: it submits a task once every task it needs is recorded as done and records each outcome with
  ``bench.run.executors.record_output``, as the local executor does.
- A task runs the same body, ``bench.run.tasks.BODIES[body](workspace, **args)``, in a Ray worker. Each worker
  process builds its :class:`~bench.run.workspace.Workspace` once (``Runner.prepare`` on the same suite, data root,
  device and thread count; it reads the alignment cache the driver filled, never the store's database) and keeps
  it for the tasks it runs after.
- Artifacts live in the run folder, which every worker must see at the same path (any folder on one machine, a
  shared file system on a cluster). A worker writes its task's artifact there and returns the rows and facts; it
  reads the artifacts of the tasks it needs checked against the SHA-256 the driver recorded for them, which come
  with the task (``ArtifactReader.expect``), as the local executor reads them through the store.
- Resources per task: ``threads`` CPUs (the worker's torch threads); on CUDA one GPU for a protect task (the
  optimisation) and a quarter of one for the others (forward passes).
- What a task computed (``bench.core.work_log``) comes back with its output, so recomputations count across workers.

Without ``address`` the executor starts a new local Ray with one CPU per core this process may use, its workers at
the driver's priority, and stops it at the end, even where a cluster started on this machine (or the address one
left behind) is found; with ``address`` (``auto`` or ``host:port``) it joins that cluster. An already initialised
Ray (a test's, a notebook's) is used as it is.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.core.progress import Reporter
from bench.run.artifacts import ArtifactReader
from bench.run.executors import pending, record_blocked, record_failure, record_output
from bench.run.plan import TaskNode
from bench.run.store import RunStore
from bench.run.suites import Suite
from bench.run.tasks import BODIES
from bench.run.workspace import TaskOutput, Workspace


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build the run's workspace: plain data, pickled to every task."""

    suite: Suite
    run_dir: str
    data_root: str
    device: str
    threads: int

    def key(self) -> str:
        return repr(self)


# one per worker process, for the run it serves: the workspace and the reader its artifacts come through
_WORKSPACES: dict[str, tuple[Workspace, ArtifactReader]] = {}


def worker_workspace(spec: WorkerSpec) -> tuple[Workspace, ArtifactReader]:
    if spec.key() not in _WORKSPACES:
        from bench.run.runner import Runner

        reader = ArtifactReader(spec.run_dir)
        runner = Runner(spec.suite, spec.run_dir, data_root=spec.data_root, device=spec.device,
                        threads=spec.threads, store=reader)
        torch.set_num_threads(runner.threads)
        workspace, _ = runner.prepare(*runner.load_models())
        _WORKSPACES.clear()
        _WORKSPACES[spec.key()] = workspace, reader
    return _WORKSPACES[spec.key()]


def run_task(spec: WorkerSpec, key: str, body: str, args: dict[str, Any],
             hashes: dict[str, str]) -> tuple[TaskOutput, float, dict]:
    """One task in a worker: (its output without tensors, seconds, what it computed). ``hashes``: the SHA-256
    recorded for the artifacts of the tasks it needs; each is checked when read. The artifact, when the task
    keeps one, is written to the shared run folder before returning."""
    workspace, reader = worker_workspace(spec)
    reader.expect(hashes)
    t0, cpu0 = time.perf_counter(), time.process_time()
    output = BODIES[body](workspace, **args)
    seconds = time.perf_counter() - t0
    output.info["cpu_seconds"] = time.process_time() - cpu0
    if output.tensors is not None:
        sha256 = reader.save_artifact(key, output.tensors)
        output = TaskOutput(output.info, output.rows, None, sha256)
    work = workspace.caches.work.as_dict()
    workspace.caches.work.clear()
    return output, seconds, work


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--executor ray needs Ray: pip install 'cloakbench[ray]' (or pip install ray)") from exc
    return ray


class RayExecutor:
    def __init__(self, suite: Suite, address: str | None = None, gpu_share: float = 0.25):
        self.suite = suite
        self.address = address
        self.gpu_share = gpu_share
        _ray()  # fail before any work when Ray is missing

    def resources(self, task: TaskNode, spec: WorkerSpec) -> dict[str, float]:
        gpus = 0.0
        if spec.device.startswith("cuda"):
            gpus = 1.0 if task.kind == "protect" else self.gpu_share
        return {"num_cpus": spec.threads, "num_gpus": gpus}

    def _connect(self, reporter: Reporter) -> bool:
        """Join or start Ray; True when this executor started it (and so stops it)."""
        ray = _ray()
        if ray.is_initialized():
            return False
        if self.address:
            ray.init(address=self.address, logging_level="warning")
            reporter.message(f"ray: joined {self.address} ({ray.cluster_resources()})")
        else:
            from bench.core.devices import available_cores

            # Workers at the driver's priority: Ray's default (15 nicer) starves them on a shared machine.
            os.environ.setdefault("RAY_worker_niceness", "0")
            # "local": a new instance even where `ray start` left its address behind (a stale one makes a
            # plain ray.init try to join it and refuse num_cpus)
            ray.init(address="local", num_cpus=available_cores(), include_dashboard=False, logging_level="warning")
            reporter.message(f"ray: started a local cluster ({ray.cluster_resources()})")
        return True

    def run(self, tasks: list[TaskNode], workspace: Workspace, store: RunStore, reporter: Reporter) -> None:
        todo = pending(tasks, store, reporter)
        reporter.phase("tasks", len(todo))
        if not todo:
            return
        ray = _ray()
        started = self._connect(reporter)
        spec = WorkerSpec(self.suite, str(Path(store.run_dir).resolve()), str(workspace.context.data_root),
                          workspace.device, torch.get_num_threads())
        remote = ray.remote(run_task)
        spec_ref = ray.put(spec)
        done = {t.key for t in tasks if store.is_done(t.key)}
        failed: set[str] = set()
        waiting, running = list(todo), {}
        try:
            while waiting or running:
                for task in list(waiting):
                    blockers = [d for d in task.deps if d in failed]
                    if blockers:
                        waiting.remove(task)
                        failed.add(task.key)
                        record_blocked(task, blockers, store)
                        reporter.advance(task.label)
                    elif all(d in done for d in task.deps):
                        waiting.remove(task)
                        hashes = {d: h for d in task.deps if (h := store.recorded_sha256(d))}
                        store.begin(task.key, task.label)  # what `bench status` shows as computing
                        ref = remote.options(**self.resources(task, spec)).remote(spec_ref, task.key, task.body,
                                                                                  task.args, hashes)
                        running[ref] = task
                if not running:  # what is left waits for tasks that are neither done nor planned here
                    for task in waiting:
                        record_blocked(task, [d for d in task.deps if d not in done], store)
                        reporter.advance(task.label)
                    break
                finished, _ = ray.wait(list(running), num_returns=1)
                for ref in finished:
                    task = running.pop(ref)
                    try:
                        output, seconds, work = ray.get(ref)
                    except Exception as exc:  # the worker's exception, wrapped by Ray
                        failed.add(task.key)
                        cause = getattr(exc, "cause", None) or exc
                        err = record_failure(task, cause, 0.0, store)
                        reporter.message(f"[red]failed[/red] {task.label}: {err}")
                    else:
                        record_output(task, output, seconds, store)
                        workspace.caches.work.merge(work)
                        done.add(task.key)
                    reporter.advance(task.label)
        finally:
            for ref in running:
                ray.cancel(ref)
            if started:
                ray.shutdown()


__all__ = ["RayExecutor", "WorkerSpec", "run_task", "worker_workspace"]
