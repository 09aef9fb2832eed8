"""The method table of docs/methods.md: generated from the published run of the methods suite, never by hand."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from bench.cli import main
from bench.report import method_table

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_method_table_is_the_published_one():
    """Equal to the table of results/methods/ when a run is published there, else the pending block."""
    published = (ROOT / method_table.PUBLISHED / "leaderboard.json").is_file()
    expected = method_table.block(ROOT)
    assert method_table.shown(ROOT / method_table.DOC) == expected, (
        "regenerate it: " + method_table.COMMANDS[1] if published else
        "no run is published in results/methods/: the block must say the table is pending (method_table.write)")
    assert ("| method | kind | users |" in expected) == published


def _marks(svg: str) -> list[str]:
    """What a chart's marks say when hovered (each mark's <title>): method, LPIPS, PSR and interval."""
    return sorted(re.findall(r"<title>(.*?)</title>", svg))


def test_the_docs_chart_is_the_published_one():
    """The chart beside docs/methods.md draws the published run: the same marks with the same numbers (its drawing
    itself varies with matplotlib's version, its marks do not)."""
    board_file = ROOT / method_table.PUBLISHED / "leaderboard.json"
    chart = ROOT / method_table.DOC.with_name(method_table.CHART)
    if not board_file.is_file():
        assert not chart.exists(), "a chart with no published run behind it"
        return
    board = json.loads(board_file.read_text())
    fresh = method_table.chart(board)
    assert chart.is_file() and _marks(chart.read_text()) == _marks(fresh), "regenerate it: " + method_table.COMMANDS[1]
    assert len(_marks(fresh)) == len(board["entries"])


def test_the_table_is_written_from_a_published_run(published_table, tmp_path):
    board, shown = published_table(method_table.TABLE, "--method-table")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in shown.splitlines() if line.startswith("| ")}
    pgd, fgsm = rows["pgd"], rows["fgsm"]
    entries = {e["method"]: e for e in board["entries"]}
    # the reduced method protected one of the two users and says so; pgd ran its changed config on both
    assert entries["fgsm"]["users"] == 1 and "| 1 of 2 users |" in fgsm
    assert entries["pgd"]["users"] == 2 and pgd.endswith("| steps=2 |")
    worst, interval = entries["pgd"]["psr_top1_worst"], entries["pgd"]["psr_top1_worst_ci"]
    assert f"| {100 * worst:.1f} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}] |" in pgd
    # two of the registered methods measured: the table says it is partial and names the rest
    from bench.registry import METHODS

    others = [m for m in METHODS.names() if m not in ("pgd", "fgsm")]
    assert f"Not yet measured: {len(others)} of the {len(others) + 2} registered methods ({', '.join(others)})" in shown
    # the chart the table links to, written beside the doc: one mark per row
    assert f"]({method_table.CHART})" in shown
    marks = _marks((tmp_path / method_table.CHART).read_text())
    assert [m.split(":")[0] for m in marks] == ["fgsm", "pgd"]


def test_the_equality_check_fails_in_either_state(tiny_run, tmp_path):
    """A pending block beside a published run, and a table beside no published run, both differ from block()."""
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    shutil.copy(ROOT / method_table.DOC, repo / method_table.DOC)
    method_table.write(repo / method_table.PUBLISHED, repo / method_table.DOC)
    assert method_table.shown(repo / method_table.DOC) == method_table.block(repo) == method_table.pending()
    assert main(["leaderboard", str(tiny_run), "--publish", str(repo / method_table.PUBLISHED)]) == 0
    assert method_table.shown(repo / method_table.DOC) != method_table.block(repo)  # published, doc not regenerated
    method_table.write(repo / method_table.PUBLISHED, repo / method_table.DOC)
    assert method_table.shown(repo / method_table.DOC) == method_table.block(repo)
    assert (repo / method_table.DOC.with_name(method_table.CHART)).is_file()
    shutil.rmtree(repo / method_table.PUBLISHED)
    assert method_table.shown(repo / method_table.DOC) != method_table.block(repo)  # a table with no run behind it
    method_table.write(repo / method_table.PUBLISHED, repo / method_table.DOC)  # pending again: its chart goes too
    assert not (repo / method_table.DOC.with_name(method_table.CHART)).exists()


def test_method_table_needs_publish(tiny_run, capsys):
    assert main(["leaderboard", str(tiny_run), "--method-table", "docs/methods.md"]) == 2
    assert "--examples go with --publish" in capsys.readouterr().err


def test_every_row_has_the_header_s_cells(tiny_run):
    """Measured, failed and unavailable rows alike (an unavailable method is one cell with its reason)."""
    from bench.report.leaderboard import build_runs

    board = build_runs([tiny_run])
    board["entries"].append({"method": "never-ran", "kind": "per-image", "scenario": "probe", "status": "unavailable",
                             "reason": "no weights here"})
    lines = [line for line in method_table.render(board).splitlines() if line.startswith("| ")]
    assert {line.count("|") for line in lines} == {len(method_table.HEAD) + 1} and "unavailable: no weights here" in lines[-1]


def test_a_row_on_fewer_users_says_so_and_is_not_ranked_against_the_full_rows():
    """Pure data: two methods on the run's 10 users and a costly one on 2 of them. The full rows are ranked on
    their 10 users (the 2 shared users alone would tie them); the 2-user row has no rank, only its user count."""
    from bench.measures.ranking import rank_entries

    users = [f"u{i}" for i in range(10)]
    strong = dict.fromkeys(users, 1.0)
    weak = {u: 1.0 if u in ("u0", "u1") else 0.0 for u in users}  # alike on the reduced row's two users only

    def entry(method, per_user, reduced_to=None):
        per_user = {u: v for u, v in per_user.items() if reduced_to is None or u in reduced_to}
        mean = sum(per_user.values()) / len(per_user)
        return {"method": method, "kind": "universal", "scenario": "probe", "status": "ok", "users": len(per_user),
                "psr": {"sface": {"none": {"top1": mean}}}, "psr_top1_worst": mean,
                "per_user_top1": {"sface|none": per_user}}

    board = {"run": {"suite": "methods", "users": users, "surrogates": ["sface"]}, "targets": ["sface"],
             "adversaries": ["none"], "target_info": {"sface": {"white_box": True}},
             "entries": [entry("a", strong), entry("c", weak), entry("square", dict.fromkeys(users, 0.5), {"u0", "u1"})]}
    rank_entries(board["entries"])
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in method_table.render(board).splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    rank = method_table.HEAD.index("rank")
    assert [rows[m][rank] for m in ("a", "c", "square")] == ["1", "2", "not ranked (2 users)"]
    assert "2 of 10 users" in rows["square"][-1]
