"""Task bodies: plain top-level functions over explicit inputs, run by an executor (``bench.run.executors``).

Each body takes the :class:`~bench.run.workspace.Workspace` (the run's prepared data and configured plug-ins) and
the task's own arguments (names, a user, a seed, the keys of the tasks it reads), and returns a
:class:`~bench.run.workspace.TaskOutput`: facts for the task record, result rows, and the tensors to keep as its
artifact. A body never writes the store: the executor saves the artifact, then records the rows and the status in
one transaction. ``BODIES`` maps the planner's ``TaskNode.body`` names to them; a body is found by name, so a task
pickles as (name, args).

- ``protection``: ``protect`` (fit and protect one user's photos) and ``publish_photos`` (photo space);
- ``evaluation``: ``clean`` (clean embeddings), ``evaluate``, ``evaluate_clean`` and ``key_holder``.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.run.tasks.evaluation import clean, evaluate, evaluate_clean, key_holder
from bench.run.tasks.protection import protect, publish_photos
from bench.run.workspace import TaskOutput

BODIES: dict[str, Callable[..., TaskOutput]] = {
    "clean": clean, "protect": protect, "evaluate": evaluate, "evaluate_clean": evaluate_clean,
    "key_holder": key_holder, "publish_photos": publish_photos,
}

__all__ = ["BODIES"]
