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


def test_set_overrides_a_method_config_and_bad_settings_fail_before_any_work(capsys, tmp_path):
    from bench.commands.run import method_overrides, parse_value

    assert parse_value("100") == 100 and parse_value("16/255") == 16 / 255 and parse_value("face-box") == "face-box"
    assert method_overrides({"pgd": {"steps": 2}}, ["pgd.epsilon=4/255", "opom-fi-uap.momentum=1.0"]) == {
        "pgd": {"steps": 2, "epsilon": 4 / 255}, "opom-fi-uap": {"momentum": 1.0}}
    for setting, expected in (("pgd.nope=1", "valid keys"), ("pgd.epsilon=2", "epsilon"),
                              ("uap.iterations=3", "does not include"), ("pgd=3", "NAME.KEY=VALUE")):
        assert main(["run", "--suite", "smoke", "--set", setting, "--out", str(tmp_path)]) == 2, setting
        assert expected in capsys.readouterr().out, setting
    assert not (tmp_path / "store.sqlite").exists() or not list((tmp_path / "artifacts").glob("*"))


def test_list_methods_as_markdown_has_one_row_per_method(capsys):
    assert main(["list", "methods", "--format", "md"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| name | kind | goal | budget | reference | available |"
    assert main(["list", "methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(lines) == len(rows) + 2
    assert all(f"| `{r['name']}` |" in "\n".join(lines) for r in rows)


def test_repeats_runs_disjoint_draws_and_reports_their_spread(capsys, tmp_path):
    from bench.paths import embedded_data_root

    out = tmp_path / "draws"
    base = ["run", "--suite", "smoke", "--data-root", str(embedded_data_root()), "--out", str(out)]
    assert main([*base, "--repeats", "7"]) == 2  # 7 x 4 users: the embedded subset has 12 eligible
    assert "users x draws <= 12" in capsys.readouterr().out and not out.exists()
    assert main([*base, "--repeats", "2", "--users", "2", "--gallery-identities", "8", "--adversaries", "none",
                 "--set", "pgd.steps=1", "--threads", "1"]) == 0
    result = json.loads((out / "repeats.json").read_text())
    first, second = result["users"]
    assert len(first) == len(second) == 2 and not set(first) & set(second)
    (row,) = result["rows"]
    assert row["method"] == "pgd" and all(d and d["users"] == 2 for d in row["draws"])
    assert (out / "draw-0" / "leaderboard.json").exists() and (out / "draw-1" / "leaderboard.json").exists()


def test_the_method_table_of_the_docs_is_the_generated_one(capsys):
    from pathlib import Path

    from bench.publish import readme_block

    shown = readme_block((Path(__file__).resolve().parents[1] / "docs" / "methods.md").read_text(), "methods")
    assert main(["list", "methods", "--format", "md"]) == 0
    assert shown.rstrip("\n") == capsys.readouterr().out.rstrip("\n"), "regenerate it: bench list methods --format md"


def test_the_readme_leaderboard_is_the_published_one():
    from pathlib import Path

    from bench.publish import readme_block

    root = Path(__file__).resolve().parents[1]
    assert readme_block((root / "README.md").read_text()) == (root / "results" / "leaderboard.md").read_text(), (
        "regenerate it: bench leaderboard RUN --publish results/ --readme README.md")
