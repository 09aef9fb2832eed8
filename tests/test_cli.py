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
