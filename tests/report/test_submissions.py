"""Entries from outside: the entry schema, `bench validate`, and publishing that keeps and ranks submitted entries."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.report.result_schema import SCHEMA_FILE, Entry, entry_schema, schema_errors

RESULTS = Path(__file__).resolve().parents[2] / "results"
SUBMISSION = {"author": "A. Researcher", "paper": "unpublished", "code": "https://example.org/uap-outside",
              "hardware": "1x RTX 4090"}


@pytest.fixture
def published(tmp_path) -> Path:
    """A copy of the published quick leaderboard."""
    dest = tmp_path / "results"
    shutil.copytree(RESULTS, dest, ignore=shutil.ignore_patterns("faithful10*"))
    return dest


def _submitted(published: Path, method: str = "uap-outside") -> dict:
    """Another team's entry: the published UAP numbers under another name, with its per-user evidence."""
    entry = json.loads((published / "entries" / "uap--probe.json").read_text())
    entry.update(method=method, origin="submitted", submission=dict(SUBMISSION))
    entry.pop("rank", None)
    return entry


def test_every_published_entry_follows_the_committed_schema():
    assert json.loads((RESULTS / SCHEMA_FILE).read_text()) == entry_schema(), \
        "results/schema is stale: republish (bench leaderboard results --publish results)"
    for path in sorted(RESULTS.glob("**/entries/*.json")):
        data = json.loads(path.read_text())
        assert schema_errors(data) == [], path
        assert Entry.from_dict(data).to_dict() == data, f"{path} does not survive the typed round trip"


def test_schema_errors_are_one_line_each():
    entry = json.loads((RESULTS / "entries" / "pgd--probe.json").read_text())
    entry["status"] = "great"
    entry["psr"]["sface"]["none"]["top1"] = 1.5
    errors = schema_errors(entry)
    assert len(errors) == 2 and all("\n" not in e for e in errors)
    assert errors[0].startswith("psr/sface/none/top1: 1.5") and errors[1].startswith("status: 'great'")


def test_validate_accepts_a_submission_and_names_what_is_wrong_with_a_bad_one(published, tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_submitted(published)))
    broken = _submitted(published)
    broken["psr"]["sface"]["none"]["top1"] = 0.99  # not what its users say
    del broken["submission"]["code"]
    bad.write_text(json.dumps(broken))
    assert main(["validate", str(good), "--board", str(published)]) == 0
    assert "valid submitted entry" in capsys.readouterr().out
    assert main(["validate", str(bad), "--board", str(published)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{bad}: submission: 'code' is a required property"]  # schema first; evidence once it parses
    del broken["submission"]
    broken["submission"] = dict(SUBMISSION)
    bad.write_text(json.dumps(broken))
    assert main(["validate", str(bad), "--board", str(published)]) == 1
    assert "psr/sface/none/top1: 0.990000 is not the mean of its 30 users' values" in capsys.readouterr().out


def test_publish_keeps_and_ranks_a_submitted_entry(published):
    path = published / "entries" / "uap-outside--probe.json"
    path.write_text(json.dumps(_submitted(published), indent=2))
    kept = path.read_text()
    assert main(["leaderboard", str(published), "--publish", str(published)]) == 0
    assert path.read_text() == kept  # submitted files are kept as submitted
    board = json.loads((published / "leaderboard.json").read_text())
    by_method = {e["method"]: e for e in board["entries"]}
    assert by_method["uap-outside"]["rank"] == by_method["uap"]["rank"]  # the same evidence ties
    assert "uap-outside‡" in (published / "leaderboard.md").read_text()
    # publishing again finds it again, once
    assert main(["leaderboard", str(published), "--publish", str(published)]) == 0
    assert [e["method"] for e in json.loads((published / "leaderboard.json").read_text())["entries"]].count(
        "uap-outside") == 1


def test_publish_refuses_a_submitted_entry_of_another_protocol(published, capsys):
    entry = _submitted(published)
    entry["run"]["protocol"]["seeds"] = [1]
    (published / "entries" / "uap-outside--probe.json").write_text(json.dumps(entry))
    before = (published / "leaderboard.json").read_text()
    assert main(["leaderboard", str(published), "--publish", str(published)]) == 2
    assert "differs in seeds" in capsys.readouterr().err
    assert (published / "leaderboard.json").read_text() == before  # nothing written


def test_nothing_published_names_a_folder_of_the_machine_that_made_it():
    pattern = re.compile(r"(?<![\w.$~])/(root|home|work|tmp|Users|mnt|srv)/")
    for path in sorted(RESULTS.rglob("*")):
        if path.suffix in (".json", ".csv", ".md"):
            found = pattern.search(path.read_text())
            assert found is None, f"{path} holds a machine path near {path.read_text()[found.start():][:60]!r}"


def test_a_budget_in_words_validates():
    """An obfuscation bounds its change by what it does, not by a number: its budget is a note."""
    entry = json.loads((RESULTS / "entries" / "pgd--probe.json").read_text())
    entry["budget"] = {"note": "Gaussian blur sigma 4 px, unbounded"}
    assert schema_errors(entry) == []
    entry["budget"] = {"linf": "8/255"}
    assert schema_errors(entry) != []


def test_a_damaged_json_file_is_one_line_for_an_entry_and_a_leaderboard_alike(published, tmp_path, capsys):
    """`bench validate ENTRY` and `bench check RUN` read their JSON through one reader: a file cut short or not
    text at all is named with what is wrong, in one line, never a traceback."""
    cut = tmp_path / "cut.json"
    cut.write_text((published / "entries" / "uap--probe.json").read_text()[:200])
    assert main(["validate", str(cut), "--board", str(published)]) != 0
    err = capsys.readouterr()
    assert re.search(rf"{re.escape(str(cut))} is not valid JSON \(.* at line \d+, column \d+\)", err.out + err.err)
    run = tmp_path / "run"
    run.mkdir()
    (run / "leaderboard.json").write_bytes(b"\xff\xfe\x00binary")
    assert main(["check", str(run), "--baseline", str(published / "baseline.json")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is not a text file, so not JSON; regenerate it with `bench leaderboard" in lines[0]
