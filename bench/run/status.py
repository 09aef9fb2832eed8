"""Where a run folder stands (``bench status``), read from its store while a run computes in it or after it stopped:
the tasks its last invocation planned, done, failed and still to go, per kind; whether a run holds the folder now
and which task it computes; the time left at that invocation's pace, each task weighed by the price a dry run gave
it where the run had one (the rule of its own ETA, ``bench.core.progress.Pace``).

Every invocation of ``bench run`` records what it planned (``meta.planned``: start time, code revision, each task's
key, kind and label, the prices of those left), so what it counts is what that invocation will compute; a folder
written before this was recorded shows what is done and failed, not what is left.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.core.progress import Pace
from bench.run.folder_lock import lock_holder
from bench.run.store import Outcome, RunStore

KIND_ORDER = ("clean", "protect", "photos", "eval", "authorized")


@dataclass
class RunStatus:
    run_dir: str
    suite: str | None
    holder: str | None  # who computes in the folder now ("pid ... on host ... since ..."), None: nobody
    planned: bool  # the last invocation recorded its plan (False: a folder from before it was recorded)
    started: float | None = None  # the last invocation's start (time.time())
    revision: str | None = None
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> done, failed, to_go
    # (label, seconds since it started, its latest step: label, done, total, at, seconds_ago; None before it
    # reported one)
    computing: list[tuple[str, float, dict[str, Any] | None]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (label, error) of planned tasks that failed
    # method -> protect tasks done, planned (a method is complete when every user it protects is done)
    methods: dict[str, list[int]] = field(default_factory=dict)
    seconds_left: float | None = None  # at the last invocation's pace; None before its first task finished
    priced: bool = False  # the pace weighs each task by its dry-run price (else every task counts alike)

    def total(self, what: str) -> int:
        return sum(k[what] for k in self.kinds.values())

    def protecting(self) -> set[str]:
        """The methods whose protect task computes now."""
        return {_protected_by(label) for label, _, _ in self.computing if label.startswith("protect/")}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "done": self.total("done"), "failed_count": self.total("failed"),
                "to_go": self.total("to_go")}


def run_status(run_dir: str | os.PathLike, now: float | None = None) -> RunStatus:
    """The status of one run folder (``FileNotFoundError`` when it is not one)."""
    now = time.time() if now is None else now
    store = RunStore.open_existing(run_dir)
    try:
        outcomes, planned, attempts, steps = store.outcomes(), store.get_meta("planned"), store.attempts(), store.steps()
        status = RunStatus(str(run_dir), (store.get_meta("suite") or {}).get("name"), lock_holder(run_dir),
                           planned is not None)
    finally:
        store.close()
    if planned is None:  # what is recorded, without what is left
        for outcome in outcomes.values():
            status.kinds.setdefault(outcome.kind, {"done": 0, "failed": 0, "to_go": 0})[outcome.status] += 1
        status.failed = [(o.label, o.error or "") for o in outcomes.values() if o.status == "failed"]
    else:
        _count_planned(status, planned, outcomes, attempts, steps, now)
    status.kinds = {k: status.kinds[k] for k in sorted(status.kinds, key=_kind_rank)}
    return status


def _count_planned(status: RunStatus, planned: dict[str, Any], outcomes: dict[str, Outcome],
                   attempts: list[dict[str, Any]], steps: dict[str, dict[str, Any]], now: float) -> None:
    """Counts, methods, failures, the task under way and the time left of the invocation that recorded ``planned``."""
    started = status.started = planned["started"]
    status.revision = planned.get("git_revision")

    def this_run(key: str) -> bool:
        return key in outcomes and (outcomes[key].finished or 0) >= started

    # the tasks this invocation had to compute: all but those done before it started
    todo = [key for key, _, _ in planned["tasks"]
            if this_run(key) or key not in outcomes or outcomes[key].status != "done"]
    pace = Pace(len(todo), planned.get("prices") or {}, start=started)
    status.priced = bool(planned.get("prices"))
    for key, kind, label in planned["tasks"]:
        outcome = outcomes.get(key)
        done = outcome is not None and outcome.status == "done"
        failed = outcome is not None and outcome.status == "failed" and this_run(key)  # else tried again: to go
        counts = status.kinds.setdefault(kind, {"done": 0, "failed": 0, "to_go": 0})
        counts["done" if done else "failed" if failed else "to_go"] += 1
        if failed:
            status.failed.append((label, outcome.error or ""))
        if kind == "protect":
            done_planned = status.methods.setdefault(_protected_by(label), [0, 0])
            done_planned[0] += done
            done_planned[1] += 1
        if this_run(key):
            pace.advance(label, outcome.finished)
    if status.holder:
        status.computing = [(a["label"], now - a["started"], _step_of(steps.get(a["key"]), a["started"], now))
                            for a in attempts if a["started"] >= started and not this_run(a["key"])]
    # running: what is left at the pace of the tasks done, less the time since the last of them; stopped: as it was
    # when the last one finished
    status.seconds_left = pace.eta(now if status.holder else pace.last)


def _protected_by(label: str) -> str:
    """The method of a protect task's label (protect/<method>/<user>/<seed>)."""
    return label.split("/")[1]


def _step_of(step: dict[str, Any] | None, attempt_started: float, now: float) -> dict[str, Any] | None:
    """The attempt's latest step; one left by an earlier attempt of the same task (killed) is not its own."""
    if step is None or step["at"] < attempt_started:
        return None
    return {**step, "seconds_ago": now - step["at"]}


def _kind_rank(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


__all__ = ["RunStatus", "run_status"]
