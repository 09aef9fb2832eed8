"""Progress of a command's work on the console: a live bar on a terminal (``RichReporter``), plain lines in logs
(``LogReporter``), the one that suits a console (``console_reporter``). Both show the tasks and, under the task
under way, the steps a plug-in reports (``Reporter.step``); the tasks' ETA weighs each task by its price where the run
has one (``Reporter.expect``, ``bench.core.progress.Pace``). ``clock_time`` writes seconds as h:mm:ss for both and
for the dry run's tables."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from bench.core.progress import Pace, Reporter


class RemainingColumn(ProgressColumn):
    """The ETA of a bar: its ``Pace`` where it has one (the tasks), else rich's estimate from recent steps."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        pace = task.fields.get("pace")
        seconds = pace.eta(time.monotonic()) if pace is not None else task.time_remaining
        return Text(clock_time(seconds) if seconds is not None else "-:--:--", style="progress.remaining")


class RichReporter(Reporter):
    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[item]}"),
            TimeElapsedColumn(), TextColumn("ETA"), RemainingColumn(), console=console,
        )
        self.task_id, self.pace = None, None
        self.step_id, self.step_label = None, ""

    def live(self) -> Progress:
        return self.progress

    def phase(self, name: str, total: int) -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, visible=False)
        self.pace = self.next_pace(total, time.monotonic())
        self.task_id = self.progress.add_task(name, total=total, item="", pace=self.pace)

    def advance(self, label: str = "") -> None:
        if self.task_id is not None:
            self.pace.advance(label, time.monotonic())
            self.progress.update(self.task_id, advance=1, item=label)

    def message(self, text: str) -> None:
        self.progress.console.print(text)

    def step(self, label: str, done: int, total: int) -> None:
        """A second bar under the tasks' bar for the task under way, gone when its steps are done."""
        if self.step_id is not None and (label != self.step_label or done == 0):  # another loop, or this one again
            self.progress.remove_task(self.step_id)
            self.step_id = None
        if self.step_id is None:
            self.step_id, self.step_label = self.progress.add_task("  " + label, total=total, item=""), label
        self.progress.update(self.step_id, completed=done, total=total)
        if done >= total:
            self.progress.remove_task(self.step_id)
            self.step_id = None


class LogReporter(Reporter):
    """Progress as plain lines when the output is not a terminal (batch jobs, cluster and CI logs), where a
    live bar would print nothing until the end: a line at most every ``every`` seconds and at a phase's end."""

    def __init__(self, console: Console, every: float = 30.0):
        self.console, self.every = console, every
        self.name, self.total, self.done, self.start, self.last = "", 0, 0, 0.0, 0.0
        self.pace = Pace(0)
        self.step_label, self.step_start, self.step_last, self.step_shown = "", 0.0, 0.0, False

    def phase(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.start = self.last = time.monotonic()
        self.pace = self.next_pace(total, self.start)

    def advance(self, label: str = "") -> None:
        self.done += 1
        now = time.monotonic()
        self.pace.advance(label, now)
        if now - self.last < self.every and 1 < self.done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        line = progress_line(self.name, self.done, self.total, elapsed, self.pace.eta(now))
        self.console.print(f"{line} {label}", highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)  # one line per message: logs are read and grepped line by line

    def step(self, label: str, done: int, total: int) -> None:
        """Indented lines for a loop of the task under way that runs long: one once ``every`` seconds have passed,
        then at most every ``every`` seconds, and one at its end; a shorter loop prints nothing (the task's line
        says enough)."""
        now = time.monotonic()
        if label != self.step_label or done == 0:
            self.step_label, self.step_start, self.step_last, self.step_shown = label, now, now, False
            return
        if (now - self.step_last < self.every and done < total) or (done >= total and not self.step_shown):
            return
        self.step_last, self.step_shown = now, True
        self.console.print("  " + progress_line(label, done, total, now - self.step_start), highlight=False)


def progress_line(name: str, done: int, total: int, elapsed: float, eta: float | None = None) -> str:
    """"name done/total (pct%) elapsed h:mm:ss ETA h:mm:ss"; without ``eta``, the ETA at the mean pace per item."""
    if eta is None and done:
        eta = elapsed / done * (total - done)
    return (f"{name} {done}/{total} ({100 * done / max(total, 1):.0f}%) elapsed {clock_time(elapsed)} "
            f"ETA {clock_time(eta) if eta is not None else '-:--:--'}")


def console_reporter(console: Console) -> Reporter:
    """A live bar on a terminal, plain lines otherwise."""
    return RichReporter(console) if console.is_terminal else LogReporter(console)


def clock_time(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
