"""The command line: listings, clear errors."""

from __future__ import annotations

import json
import re

import pytest

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

    from bench.commands._progress import LogReporter

    out = io.StringIO()
    reporter = LogReporter(Console(file=out, width=200), every=3600)
    reporter.phase("tasks", 3)
    for label in ("clean/sface", "protect/pgd/A", "eval/pgd/none/sface"):
        reporter.advance(label)
    lines = out.getvalue().splitlines()
    # the first and the last task print (the interval has not elapsed in between)
    assert len(lines) == 2 and lines[0].startswith("tasks 1/3 (33%)") and "ETA" in lines[0]
    assert lines[1].startswith("tasks 3/3 (100%)") and lines[1].endswith("eval/pgd/none/sface")


def test_the_eta_weighs_each_task_by_its_price(monkeypatch):
    import io

    from rich.console import Console

    from bench.commands import _progress
    from bench.commands._progress import LogReporter, RichReporter
    from bench.core.progress import Pace

    # priced: one cheap task done in 10 s leaves the 9x dearer one at 90 s; counted alike it would say 10 s
    pace = Pace(2, {"clean/sface": 1.0, "protect/pgd/A": 9.0})
    pace.advance("clean/sface", 10.0)
    assert pace.eta(10.0) == pytest.approx(90.0)
    assert pace.eta(40.0) == pytest.approx(60.0)  # the 30 s since went into the task under way
    counted = Pace(2)
    counted.advance("clean/sface", 10.0)
    assert counted.eta(10.0) == pytest.approx(10.0)
    # a task under way that runs long neither inflates the ETA (the pace is that of the tasks done) nor ends it:
    # it stays at what is left after the costliest task to go
    alike = Pace(4, {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}, start=100.0)
    alike.advance("a", 110.0)
    assert alike.eta(110.0) == pytest.approx(30.0) and alike.eta(125.0) == pytest.approx(20.0)
    assert alike.eta(10_000.0) == pytest.approx(20.0)
    # a task without a price weighs their mean; one priced at nothing still moves the pace
    unpriced = Pace(3, {"a": 2.0, "b": 4.0})
    unpriced.advance("c", 3.0)
    assert unpriced.eta(3.0) == pytest.approx(6.0) and Pace(0).eta(1.0) is None
    free = Pace(2, {"a": 0.0, "b": 1.0})
    free.advance("a", 1.0)
    assert free.eta(1.0) is not None

    clock = iter([0.0, 10.0, 100.0])
    monkeypatch.setattr(_progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    reporter = LogReporter(Console(file=out, width=200), every=3600)
    reporter.expect({"clean/sface": 1.0, "protect/pgd/A": 9.0})
    reporter.phase("tasks", 2)
    reporter.advance("clean/sface")
    assert out.getvalue().startswith("tasks 1/2 (50%) elapsed 0:00:10 ETA 0:01:30 clean/sface")
    reporter.phase("identity bank", 1)  # the prices were for the phase that followed them only
    assert reporter.pace.costs == {}

    monkeypatch.undo()  # the live bar reads the real clock
    live = RichReporter(Console(file=io.StringIO()))
    live.expect({"clean/sface": 1.0, "protect/pgd/A": 9.0})
    live.phase("tasks", 2)
    live.advance("clean/sface")
    column = _progress.RemainingColumn()
    task = live.progress.tasks[0]
    assert task.fields["pace"].left == pytest.approx(9.0)
    assert re.fullmatch(r"\d+:\d\d:\d\d", str(column.render(task)))


def test_steps_inside_a_task_print_only_when_the_loop_runs_long():
    import io

    from rich.console import Console

    from bench.commands._progress import LogReporter, RichReporter

    def lines(every: float) -> list[str]:
        out = io.StringIO()
        reporter = LogReporter(Console(file=out, width=200), every=every)
        for done in range(5):
            reporter.step("purifier for sface", done, 4)
        return out.getvalue().splitlines()

    assert lines(every=3600) == []  # a loop shorter than the interval: the task's own line says enough
    shown = lines(every=0)  # every step is past the interval
    assert [line.split(" (")[0] for line in shown] == [f"  purifier for sface {d}/4" for d in range(1, 5)]
    assert shown[-1].startswith("  purifier for sface 4/4 (100%) elapsed") and shown[-1].endswith("ETA 0:00:00")

    live = RichReporter(Console(file=io.StringIO()))
    live.phase("tasks", 1)
    live.step("fit", 1, 3)
    assert len(live.progress.tasks) == 2 and live.progress.tasks[1].completed == 1
    live.step("fit", 3, 3)  # done: the second bar goes
    assert len(live.progress.tasks) == 1


def test_set_overrides_a_method_config_and_bad_settings_fail_before_any_work(capsys, tmp_path):
    from bench.commands._settings import method_overrides, parse_value

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
    from bench.core.paths import embedded_data_root

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

    from bench.report.publish import readme_block

    shown = readme_block((Path(__file__).resolve().parents[2] / "docs" / "methods.md").read_text(), "methods")
    assert main(["list", "methods", "--format", "md"]) == 0
    assert shown.rstrip("\n") == capsys.readouterr().out.rstrip("\n"), "regenerate it: bench list methods --format md"


def test_the_readme_leaderboard_is_the_published_one():
    from pathlib import Path

    from bench.report.publish import readme_block

    root = Path(__file__).resolve().parents[2]
    assert readme_block((root / "README.md").read_text()) == (root / "results" / "leaderboard.md").read_text(), (
        "regenerate it: bench leaderboard RUN --publish results/ --readme README.md")


def test_version_and_a_light_start():
    import subprocess
    import sys

    import bench

    out = subprocess.run([sys.executable, "-m", "bench.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"cloakbench {bench.__version__}"
    # listing suites imports only the list command: no run machinery, no model code
    code = ("import sys; from bench.cli import main; main(['list', 'suites', '--format', 'json']); "
            "print(sorted(m for m in ('bench.run.runner', 'bench.commands.run', 'bench.commands.perf') "
            "if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"


def test_every_option_has_help():
    import argparse

    from bench.cli import build_parser

    def missing(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from missing(child, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                yield f"{where} {'/'.join(action.option_strings) or action.dest}"

    assert list(missing(build_parser(), "bench")) == []


def test_unknown_names_and_keys_fail_the_dry_run_as_the_run_with_a_suggestion(capsys, tmp_path):
    for args, expected in ((["--methods", "pgdd"], "unknown method 'pgdd' (did you mean 'pgd'?)"),
                           (["--adversaries", "jpeg75"], "(did you mean 'jpeg-75'?)"),
                           (["--set", "pgd.stepz=3"], "unknown config key(s) ['stepz'] (did you mean 'steps'?)")):
        for dry in ([], ["--dry-run"]):
            assert main(["run", "--suite", "smoke", *args, *dry, "--out", str(tmp_path / "run")]) == 2, args
            assert expected in " ".join(capsys.readouterr().out.split()), (args, dry)
    assert not (tmp_path / "run").exists()


def test_adversaries_are_listed_as_adversaries_with_descriptions(capsys):
    assert main(["list", "adversaries", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert main(["list", "attacks", "--json"]) == 0  # the old spelling still works
    assert json.loads(capsys.readouterr().out) == rows
    jpeg = next(r for r in rows if r["name"] == "jpeg-75")
    assert jpeg["description"].startswith("JPEG re-compression")
    assert main(["list", "adversaries"]) == 0
    table = capsys.readouterr().out
    assert "adversaries: " in table and "JPEG re-compression" in table
    assert all(len(line) <= 140 for line in table.splitlines())


def test_list_tables_keep_one_line_per_name(capsys):
    for kind in ("targets", "suites"):
        assert main(["list", kind, "--json"]) == 0
        names = [r["name"] for r in json.loads(capsys.readouterr().out)]
        assert main(["list", kind]) == 0
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
        assert [line.split("│")[1].strip() for line in lines] == names, kind
    assert "quick" in names and "smoke" in names


def test_an_unforeseen_error_is_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    import pytest

    import bench.commands.list as listing

    def broken(kind):
        return None.clamp  # a plug-in bug

    monkeypatch.setattr(listing, "rows_for", broken)
    assert main(["list", "methods"]) == 1
    err = capsys.readouterr().err
    assert "AttributeError" in err and "test_cli.py:" in err and "--debug" in err and len(err.splitlines()) == 1
    with pytest.raises(AttributeError):
        main(["--debug", "list", "methods"])


def test_a_failed_task_keeps_its_full_traceback(tmp_path):
    import time

    from bench.run.executors import record_failure
    from bench.run.plan import TaskNode
    from bench.run.store import RunStore

    store = RunStore(tmp_path)
    task = TaskNode(key="k1", kind="protect", label="protect/x/u", body="protect", args={})
    started = time.time()
    try:
        (...).clamp(0, 1)  # what a plug-in author's bug looks like
    except AttributeError as exc:
        err = record_failure(task, exc, 0.1, store)
    assert err == "AttributeError: 'ellipsis' object has no attribute 'clamp'"
    assert store.task("k1")["error"] == err
    ((label, trace),) = store.tracebacks_since(started)
    assert label == "protect/x/u" and "test_cli.py" in trace and "(...).clamp(0, 1)" in trace
    store.close()


def test_protect_set_takes_the_run_form_or_the_short_one():
    import pytest

    from bench.commands._settings import one_method_overrides
    from bench.core.validation import UsageError

    assert one_method_overrides("pgd", ["pgd.steps=5", "epsilon=4/255"]) == {"steps": 5, "epsilon": 4 / 255}
    with pytest.raises(UsageError, match="runs pgd only"):
        one_method_overrides("pgd", ["uap.steps=5"])


def test_leaderboard_on_a_published_folder_says_what_it_is(capsys):
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "results"
    assert main(["leaderboard", str(results)]) == 2
    err = capsys.readouterr().err
    assert "published leaderboard, not a run" in err and "bench report" in err and "--out" not in err


def test_the_end_of_run_table_is_a_rich_table_without_highlighted_digits():
    from pathlib import Path

    from rich.console import Console

    from bench.commands._ui import print_board
    from bench.report.results_frame import load_board

    board = load_board(Path(__file__).resolve().parents[2] / "results")
    console = Console(width=400, force_terminal=True, color_system="standard", record=True)
    print_board(board, console)
    styled = console.export_text(styles=True, clear=False)
    assert "PSR@1 worst [95% CI]" in styled and "PSR@\x1b[1;36m1" not in styled
    text = console.export_text()
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert len(rows) == sum(e["status"] != "unavailable" for e in board["entries"])
    assert "Split-half check" in text


def test_compare_takes_scenarios_as_run_does(capsys):
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "results"
    assert main(["compare", str(results), "pgd", "uap", "--scenarios", "probe", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"] == "probe"


def test_debug_prints_the_traceback_of_a_failed_task(capsys, monkeypatch, tmp_path):
    from bench.core.paths import embedded_data_root
    from bench.run import tasks

    def broken_protect(workspace, **args):
        return (...).clamp(0, 1)  # a plug-in author's bug, inside a task

    monkeypatch.setitem(tasks.BODIES, "protect", broken_protect)
    base = ["run", "--suite", "smoke", "--data-root", str(embedded_data_root()), "--users", "2",
            "--gallery-identities", "6", "--adversaries", "none", "--threads", "1"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "'ellipsis' object has no attribute 'clamp'" in out and "--debug prints each failed task's traceback" in out
    assert main(["--debug", *base, "--out", str(tmp_path / "a")]) == 1  # the failed tasks run again
    out = capsys.readouterr().out
    assert "Traceback (most recent call last)" in out and "test_cli.py" in out and "(...).clamp(0, 1)" in out


def test_a_name_list_can_leave_names_out_and_a_bad_one_fails_before_any_work(capsys, tmp_path):
    from bench.registry import METHODS, UnknownNameError
    from bench.run.plugins import expand

    assert expand(("*", "-square", "-tip-im"), METHODS) == [n for n in METHODS.names() if n not in ("square", "tip-im")]
    assert expand(("pgd", "uap", "-uap"), METHODS) == ["pgd"]
    with pytest.raises(UnknownNameError, match="square"):  # the message lists the known names
        expand(("*", "-sqare"), METHODS)
    with pytest.raises(ValueError, match=r"give the list too, e.g. '\*,-square'"):
        expand(("-square",), METHODS)
    assert main(["run", "--suite", "smoke", "--methods", "*,-sqare", "--out", str(tmp_path)]) == 2
    assert "sqare" in capsys.readouterr().out
    assert not (tmp_path / "store.sqlite").exists()
