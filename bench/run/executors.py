"""Executors: run a task graph's pending tasks and record each outcome in the run store.

An executor gets the tasks in dependency order (``bench.run.plan``), the :class:`~bench.run.workspace.Workspace` the bodies
run on, the store and a reporter. The bookkeeping every executor shares lives here as functions: which tasks are
pending, which must be skipped because a task they need failed, and how an outcome is recorded (artifact first,
then rows and status in one transaction, so a killed run loses at most the tasks in flight). A task's record
holds its wall seconds and, in its facts, ``cpu_seconds``: the CPU time of the process that ran it (all threads),
which the load of a shared machine does not inflate (``bench.perf.estimate`` prices plans on it).

``LocalExecutor`` runs the tasks one after the other in this process. Another way of running them is a new
class with the same ``run`` signature, leaving this one alone. A process pool or Ray executor ships
``(TaskNode.body, TaskNode.args)`` to workers (bodies are top-level functions found by name in
``bench.run.tasks.BODIES``, arguments are plain data), gives each worker a Workspace built the way ``Runner.run``
builds its own (``prepare_data`` reads the alignment cache, ``Runner.load_plugins`` creates the plug-ins by name),
submits a task once all its dependencies are recorded as done, and records every returned :class:`TaskOutput`
in the parent with :func:`record_output` (the SQLite store has one writer).
"""

from __future__ import annotations

import time
import traceback
from typing import Protocol

from bench.core.progress import Reporter
from bench.run.plan import TaskNode
from bench.run.store import RunStore
from bench.run.tasks import BODIES
from bench.run.workspace import TaskOutput, Workspace


class Executor(Protocol):
    def run(self, tasks: list[TaskNode], workspace: Workspace, store: RunStore, reporter: Reporter) -> None: ...


def pending(tasks: list[TaskNode], store: RunStore, reporter: Reporter) -> list[TaskNode]:
    """The tasks to compute: those not done, and the done ones whose artifact no longer matches its recorded
    SHA-256 (missing, cut short, altered), with every task that read it (one line names each damaged file)."""
    done, stale = store.done_keys(), {}
    for task in tasks:  # dependency order: a task's inputs come before it
        if task.key not in done:
            continue
        problem = store.artifact_problem(task.key)
        if problem:
            reporter.message(f"[yellow]{problem}[/yellow]: computing {task.label} again, and what reads it")
            stale[task.key] = problem
        elif any(d in stale or d not in done for d in task.deps):
            stale[task.key] = "a task it reads is computed again"
    store.mark_stale(stale)
    todo = [t for t in tasks if not store.is_done(t.key)]
    reporter.message(f"{len(tasks) - len(todo)} of {len(tasks)} tasks already done")
    return todo


def blocked_by(task: TaskNode, failed: set[str], store: RunStore) -> list[str]:
    """The tasks ``task`` needs that failed or are not done."""
    return [d for d in task.deps if d in failed or not store.is_done(d)]


def record_blocked(task: TaskNode, blockers: list[str], store: RunStore) -> None:
    store.record(task.key, task.kind, task.label, "failed", 0.0,
                 error=f"skipped: {len(blockers)} task(s) it needs failed")


def record_output(task: TaskNode, output: TaskOutput, seconds: float, store: RunStore) -> None:
    """Write the artifact (unless a worker wrote it), then the task with the artifact's SHA-256."""
    sha256 = store.save_artifact(task.key, output.tensors) if output.tensors is not None else output.artifact_sha256
    store.record(task.key, task.kind, task.label, "done", seconds, output.info, output.rows,
                 artifact_sha256=sha256)


def record_failure(task: TaskNode, exc: BaseException, seconds: float, store: RunStore) -> str:
    """Record a failed task: its one-line error (what leaderboards and summaries show) and, in its facts, the
    full traceback (the file and line a plug-in author needs; ``bench run --debug`` prints it)."""
    err = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).strip()
    store.record(task.key, task.kind, task.label, "failed", seconds, info={"traceback": trace}, error=err)
    return err


class LocalExecutor:
    """One task after the other, in this process."""

    def run(self, tasks: list[TaskNode], workspace: Workspace, store: RunStore, reporter: Reporter) -> None:
        todo = pending(tasks, store, reporter)
        reporter.phase("tasks", len(todo))
        failed: set[str] = set()
        for task in todo:
            blockers = blocked_by(task, failed, store)
            if blockers:
                failed.add(task.key)
                record_blocked(task, blockers, store)
                reporter.advance(task.label)
                continue
            t0, cpu0 = time.perf_counter(), time.process_time()
            store.begin(task.key, task.label)
            try:
                output = BODIES[task.body](workspace, **task.args)
            except Exception as exc:
                failed.add(task.key)
                err = record_failure(task, exc, time.perf_counter() - t0, store)
                reporter.message(f"[red]failed[/red] {task.label}: {err}")
            else:
                output.info["cpu_seconds"] = time.process_time() - cpu0
                record_output(task, output, time.perf_counter() - t0, store)
            reporter.advance(task.label)


__all__ = ["Executor", "LocalExecutor", "pending", "blocked_by", "record_output", "record_failure"]
