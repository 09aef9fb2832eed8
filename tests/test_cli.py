"""The command line: listings, clear errors."""

from __future__ import annotations

import json

from bench.cli import main


def test_list_json_has_names_availability_and_reasons(capsys):
    assert main(["list", "targets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    sface = next(r for r in rows if r["name"] == "sface")
    assert sface["available"] is True and sface["reason"] is None and sface["differentiable"] is True
    for kind in ("methods", "attacks", "suites"):
        assert main(["list", kind, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows and all({"name", "available", "reason"} <= set(r) for r in rows)


def test_unknown_suite_and_method_fail_with_the_known_names(capsys, tmp_path):
    assert main(["run", "--suite", "nope", "--out", str(tmp_path)]) == 2
    assert "smoke" in capsys.readouterr().out
    assert main(["run", "--suite", "smoke", "--methods", "nope", "--out", str(tmp_path)]) == 2
    assert "Known methods" in capsys.readouterr().out
    assert main(["run", "--suite", "smoke", "--surrogates", "sface-cv2", "--out", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "black boxes" in out and "dlib-resnet" in out


def test_leaderboard_on_a_folder_that_is_not_a_run(capsys, tmp_path):
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_progress_lines_with_eta_when_output_is_not_a_terminal():
    import io

    from rich.console import Console

    from bench.commands.run import LogReporter

    out = io.StringIO()
    reporter = LogReporter(Console(file=out, width=200), every=3600)
    reporter.phase("tasks", 3)
    for label in ("clean/sface", "protect/pgd/A", "eval/pgd/none/sface"):
        reporter.advance(label)
    lines = out.getvalue().splitlines()
    # the first and the last task print (the interval has not elapsed in between)
    assert len(lines) == 2 and lines[0].startswith("tasks 1/3 (33%)") and "ETA" in lines[0]
    assert lines[1].startswith("tasks 3/3 (100%)") and lines[1].endswith("eval/pgd/none/sface")
