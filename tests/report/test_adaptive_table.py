"""The before/after table of docs/adversaries.md: generated from the published run of the adaptive suite."""

from __future__ import annotations

from pathlib import Path

from bench.report import adaptive_table

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_before_after_table_is_the_published_one():
    """Equal to the table of results/adaptive/ when a run is published there, else the pending block."""
    published = (ROOT / adaptive_table.PUBLISHED / "leaderboard.json").is_file()
    assert adaptive_table.shown(ROOT / adaptive_table.DOC) == adaptive_table.block(ROOT), (
        "regenerate it: " + adaptive_table.COMMANDS[1] if published else
        "no run is published in results/adaptive/: the block must say the table is pending")
    assert ("| method | target | scenario |" in adaptive_table.block(ROOT)) == published


def test_the_table_is_written_from_a_published_run_one_row_per_method_target_scenario(published_table):
    board, shown = published_table(adaptive_table.TABLE, "--adaptive-table")
    assert "| method | target | scenario | none | jpeg-75 |" in shown
    rows = [line.strip("| ").split(" | ") for line in shown.splitlines() if line.startswith("| ") and "---" not in line]
    by_cell = {tuple(r[:3]): r[3:] for r in rows[1:]}
    entries = [e for e in board["entries"] if e["status"] != "unavailable"]
    assert len(by_cell) == len(rows) - 1 == len(entries) * len(board["targets"])
    for e in entries:
        for t in board["targets"]:
            cell = e["psr"][t]["jpeg-75"]
            expected = f"{100 * cell['top1']:.1f} [{100 * cell['top1_ci'][0]:.1f}, {100 * cell['top1_ci'][1]:.1f}]"
            assert by_cell[(e["method"], t, e["scenario"])][1] == expected


def test_a_cell_says_why_it_has_no_number():
    assert adaptive_table.cell_text({"top1": 0.25, "top1_ci": [0.1, 0.4]}) == "25.0 [10.0, 40.0]"
    assert adaptive_table.cell_text({"status": "pending", "reason": "not computed yet"}) == "pending"
    assert adaptive_table.cell_text({"status": "failed", "reason": "boom"}) == "failed"
    assert adaptive_table.cell_text(None) == "not scored" == adaptive_table.cell_text({"top5": 0.5})
