"""A real run of the smoke suite shared by the tests of the tables generated into docs, and publishing it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.cli import main


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real run of two cheap methods on two embedded users, one of them reduced to one user by the suite."""
    from bench.core.paths import embedded_data_root
    from bench.run.suites import SUITES, get_suite

    out = tmp_path_factory.mktemp("tiny") / "run"
    mp = pytest.MonkeyPatch()
    mp.setitem(SUITES, "smoke", get_suite("smoke").with_overrides(method_users={"fgsm": 1}))
    try:
        assert main(["run", "--suite", "smoke", "--data-root", str(embedded_data_root()), "--out", str(out),
                     "--users", "2", "--gallery-identities", "8", "--methods", "pgd,fgsm",
                     "--adversaries", "none,jpeg-75", "--set", "pgd.steps=2", "--threads", "1"]) == 0
    finally:
        mp.undo()
    return out


@pytest.fixture
def published_table(tiny_run, tmp_path):
    """``publish(table, flag)``: publish the tiny run with ``flag`` writing ``table``'s block (a
    ``bench.report.doc_table.DocTable``) into a copy of its doc; returns (the board, the block written). Checks the
    block is the board's table and that the rest of the doc is untouched."""
    root = Path(__file__).resolve().parents[2]

    def publish(table, flag: str) -> tuple[dict, str]:
        doc = tmp_path / table.doc.name
        shutil.copy(root / table.doc, doc)
        published = tmp_path / "published"
        assert main(["leaderboard", str(tiny_run), "--publish", str(published), flag, str(doc)]) == 0
        board = json.loads((published / "leaderboard.json").read_text())
        shown = table.shown(doc)
        assert shown == table.render(board) == table.published_block(published)
        begin, end = f"<!-- {table.marker}:begin -->", f"<!-- {table.marker}:end -->"
        before, after = (root / table.doc).read_text(), doc.read_text()
        assert before.split(begin)[0] == after.split(begin)[0] and before.split(end)[1] == after.split(end)[1]
        return board, shown

    return publish
