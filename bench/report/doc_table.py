"""A table generated into a doc from a published run, between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``,
never edited by hand: the method table of docs/methods.md (``bench.report.method_table``) and the before/after
table of docs/adversaries.md (``bench.report.adaptive_table``). Until a run is published, the block says the table
is pending and gives the commands that make it; a test keeps each doc's block equal to ``block(root)``. A table may
come with a chart of the same run, an SVG file beside the doc that its block links to (``chart_file``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report.leaderboard import FILES
from bench.report.publish import readme_block, write_readme_block


@dataclass(frozen=True)
class DocTable:
    marker: str
    published: Path  # where the suite's run is published, from the repository root
    doc: Path
    suite: str
    commands: tuple[str, ...]
    render: Callable[[dict[str, Any]], str]  # leaderboard.json's contents -> the table's Markdown
    chart: Callable[[dict[str, Any]], str] | None = None  # leaderboard.json's contents -> an SVG of the run
    chart_file: str = ""  # the chart's file name, beside the doc (its block links to it)

    def pending(self) -> str:
        return (f"The table is pending: no run of the `{self.suite}` suite is published in "
                f"`{self.published.as_posix()}/` yet. It is made by\n\n```\n" + "\n".join(self.commands) + "\n```\n")

    def published_block(self, published: Path) -> str:
        """The block for a folder published by ``bench leaderboard --publish``; pending when it holds no run."""
        return self._block(_published_board(published))

    def _block(self, board: dict[str, Any] | None) -> str:
        return self.pending() if board is None else self.render(board)

    def block(self, root: Path) -> str:
        """The block the doc must hold in the repository at ``root``."""
        return self.published_block(root / self.published)

    def shown(self, doc: Path) -> str:
        """The block a doc holds now."""
        return readme_block(doc.read_text(), self.marker)

    def write(self, published: Path, doc: Path) -> list[Path]:
        """Write the table of the run published in ``published`` into ``doc``'s block, and its chart beside ``doc``;
        returns the files written."""
        board = _published_board(published)
        written = [write_readme_block(doc, self._block(board), self.marker)]
        if self.chart is None:
            return written
        chart = doc.with_name(self.chart_file)
        if board is not None:
            chart.write_text(self.chart(board))
            written.append(chart)
        else:  # the pending block links to no chart: none is left drawing a run that is gone
            chart.unlink(missing_ok=True)
        return written


def _published_board(published: Path) -> dict[str, Any] | None:
    """The leaderboard a folder published by ``bench leaderboard --publish`` holds (None: no run published)."""
    path = published / FILES["json"][0]
    return json.loads(path.read_text()) if path.is_file() else None


def white_box_targets(board: dict[str, Any]) -> list[str]:
    """The targets a board's run also used as surrogates."""
    return [t for t in board["targets"] if board.get("target_info", {}).get(t, {}).get("white_box")]


def code_revisions(board: dict[str, Any]) -> list[str]:
    """The git revisions (12 hex digits) a board's runs ran at: a resumed run may mix several, and a board grown
    run by run holds each entry's own."""
    runs = [board["run"], *(e["run"] for e in board.get("entries", []) if isinstance(e.get("run"), dict))]
    revisions = {i.get("git_revision") or "unknown" for run in runs for i in run.get("invocations") or []}
    return sorted(r[:12] for r in revisions
                  or {(board["run"].get("environment") or {}).get("git_revision") or "unknown"})


__all__ = ["DocTable", "white_box_targets", "code_revisions"]
