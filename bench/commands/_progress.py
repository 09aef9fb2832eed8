"""Progress of a command's work on the console: a live bar on a terminal (``RichReporter``), plain lines in logs
(``LogReporter``); ``clock_time`` writes seconds as h:mm:ss for both and for the dry run's tables."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.core.progress import Reporter


class RichReporter(Reporter):
    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[item]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
        )
        self.task_id = None

    def phase(self, name: str, total: int) -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, visible=False)
        self.task_id = self.progress.add_task(name, total=total, item="")

    def advance(self, label: str = "") -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, advance=1, item=label)

    def message(self, text: str) -> None:
        self.progress.console.print(text)


class LogReporter(Reporter):
    """Progress as plain lines when the output is not a terminal (batch jobs, cluster and CI logs), where a
    live bar would print nothing until the end: a line at most every ``every`` seconds and at a phase's end."""

    def __init__(self, console: Console, every: float = 30.0):
        self.console, self.every = console, every
        self.name, self.total, self.done, self.start, self.last = "", 0, 0, 0.0, 0.0

    def phase(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.start = self.last = time.monotonic()

    def advance(self, label: str = "") -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last < self.every and 1 < self.done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done)
        self.console.print(f"{self.name} {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%) "
                           f"elapsed {clock_time(elapsed)} ETA {clock_time(eta)} {label}", highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)  # one line per message: logs are read and grepped line by line


def clock_time(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
