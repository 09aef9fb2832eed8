"""`bench check`: a run against a stored baseline passes when unchanged and fails on regressions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.report.gate import compare, reduce_board


def _board() -> dict:
    def cell(v: float) -> dict:
        return {"top1": v, "top1_ci": [v - 0.05, v + 0.05], "top5": v * 0.8, "top5_ci": [v * 0.7, v * 0.9]}

    def entry(method: str, kind: str, psr: dict, ssim: float, psnr: float, lpips: float | None) -> dict:
        top1 = [c for per in psr.values() for c in per.values()]
        return {"method": method, "kind": kind, "scenario": "probe", "status": "ok", "reason": None,
                "budget": {"linf": 16 / 255},
                "psr": {t: {a: cell(v) for a, v in per.items()} for t, per in psr.items()},
                "psr_top1_worst": min(top1), "psr_top1_mean": sum(top1) / len(top1), "ssim": ssim, "psnr": psnr,
                "lpips": lpips, "fit_s_per_user": 3.0, "protect_ms_per_photo": 0.5, "device": "cpu", "users": 10,
                "probes": 80, "authorized_accuracy": None}

    return {
        "run": {"suite": "probe-small", "created": "2026-11-22T01:00:00", "environment": {},
                "primary_score": "psr_top1_worst"},
        "targets": ["sface", "dlib"], "adversaries": ["none", "jpeg"],
        "entries": [
            entry("chameleon", "universal", {"sface": {"none": 0.9, "jpeg": 0.7}, "dlib": {"none": 0.8, "jpeg": 0.6}},
                  0.86, 32.4, 0.13),
            entry("pgd", "per-image", {"sface": {"none": 0.95, "jpeg": 0.5}, "dlib": {"none": 0.4, "jpeg": 0.3}},
                  0.9, 34.0, None),
            {"method": "lowkey", "kind": "per-image", "scenario": "probe", "status": "unavailable",
             "reason": "no weights", "psr": {}},
        ],
        "clean": {"sface": {"top1_accuracy": 0.99, "top5_accuracy": 1.0}},
    }


def _write_run(root: Path, board: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "leaderboard.json").write_text(json.dumps(board))
    return root


@pytest.fixture
def baseline(tmp_path) -> Path:
    run = _write_run(tmp_path / "base_run", _board())
    path = tmp_path / "results" / "baseline.json"
    assert main(["check", str(run), "--update-baseline", str(path)]) == 0
    return path


def _check(tmp_path, board: dict, baseline: Path, *extra: str) -> int:
    run = _write_run(tmp_path / "now_run", board)
    return main(["check", str(run), "--baseline", str(baseline), *extra])


def test_baseline_is_reduced_json(baseline):
    data = json.loads(baseline.read_text())
    assert data["format"] == "cloakbench-baseline/2" and data["suite"] == "probe-small"
    assert data["methods"]["chameleon"]["psr_top1"] == {"sface|none": 0.9, "sface|jpeg": 0.7, "dlib|none": 0.8,
                                                        "dlib|jpeg": 0.6}
    assert data["methods"]["pgd"]["lpips"] is None and data["methods"]["lowkey"]["status"] == "unavailable"


def test_identical_run_passes(tmp_path, baseline, capsys):
    assert _check(tmp_path, _board(), baseline) == 0
    assert "check passed" in capsys.readouterr().out


def test_planted_psr_drop_fails_with_readable_diff(tmp_path, baseline, capsys):
    board = _board()
    board["entries"][0]["psr"]["dlib"]["jpeg"]["top1"] = 0.48  # -0.12, beyond the 0.05 tolerance
    board["entries"][0]["psr_top1_worst"] = 0.48
    assert _check(tmp_path, board, baseline) == 1
    out = capsys.readouterr().out
    assert "check failed" in out and "chameleon" in out and "psr_top1[dlib|jpeg]" in out
    assert "psr_top1_worst" in out and "-0.1200" in out and "worse" in out


def test_small_drift_within_tolerance_passes(tmp_path, baseline):
    board = _board()
    board["entries"][1]["psr"]["sface"]["none"]["top1"] = 0.92
    board["entries"][1]["psnr"] = 34.3
    assert _check(tmp_path, board, baseline) == 0


def test_psr_tolerance_is_configurable(tmp_path, baseline):
    board = _board()
    board["entries"][1]["psr"]["sface"]["none"]["top1"] = 0.92
    assert _check(tmp_path, board, baseline, "--tolerance", "0.01") == 1


def test_quality_tolerances_per_metric(tmp_path, baseline, capsys):
    board = _board()
    board["entries"][0]["psnr"] = 31.6  # -0.8 dB
    assert _check(tmp_path, board, baseline) == 1
    assert "psnr" in capsys.readouterr().out
    assert _check(tmp_path, board, baseline, "--quality-tolerance", "psnr=1.0") == 0
    board["entries"][0]["lpips"] = None
    assert _check(tmp_path, board, baseline, "--quality-tolerance", "psnr=1.0") == 1  # a value went missing


def test_missing_method_fails(tmp_path, baseline, capsys):
    board = _board()
    del board["entries"][1]
    assert _check(tmp_path, board, baseline) == 1
    out = capsys.readouterr().out
    assert "pgd" in out and "method missing" in out


def test_newly_unavailable_method_fails(tmp_path, baseline, capsys):
    board = _board()
    board["entries"][0] = {"method": "chameleon", "scenario": "probe", "status": "unavailable",
                           "reason": "weights gone", "psr": {}}
    assert _check(tmp_path, board, baseline) == 1
    assert "newly unavailable" in capsys.readouterr().out


def test_missing_target_cell_fails(tmp_path, baseline):
    board = _board()
    del board["entries"][0]["psr"]["dlib"]
    findings = compare(json.loads(baseline.read_text()), board)
    failed = {(f.method, f.metric) for f in findings if f.failed}
    assert failed == {("chameleon", "psr_top1[dlib|none]"), ("chameleon", "psr_top1[dlib|jpeg]")}


def test_new_method_is_reported_not_failed(tmp_path, baseline, capsys):
    board = _board()
    extra = copy.deepcopy(board["entries"][0])
    extra["method"] = "opom"
    board["entries"].append(extra)
    board["entries"][2] = {**board["entries"][0], "method": "lowkey"}  # unavailable before, ok now
    assert _check(tmp_path, board, baseline) == 0
    out = capsys.readouterr().out
    assert "opom" in out and "method not in the baseline" in out and "now available" in out


def test_other_suite_fails(tmp_path, baseline, capsys):
    board = _board()
    board["run"]["suite"] = "probe-full"
    assert _check(tmp_path, board, baseline) == 1
    assert "different suite" in capsys.readouterr().out


def test_bad_inputs_give_clear_errors(tmp_path, baseline, capsys):
    run = _write_run(tmp_path / "now_run", _board())
    assert main(["check", str(run), "--baseline", str(tmp_path / "nope.json")]) == 2
    assert "--update-baseline" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "empty"), "--baseline", str(baseline)]) == 2
    assert "bench leaderboard" in capsys.readouterr().err
    assert main(["check", str(run), "--baseline", str(baseline), "--quality-tolerance", "fid=3"]) == 2
    assert "unknown checked metric" in capsys.readouterr().err


def test_reduce_ignores_failed_cells():
    board = _board()
    board["entries"][0]["psr"]["dlib"]["jpeg"] = {"status": "failed", "reason": "oom"}
    assert "dlib|jpeg" not in reduce_board(board)["methods"]["chameleon"]["psr_top1"]


def test_each_scenario_is_checked_separately(tmp_path):
    board = _board()
    board["entries"].append({**copy.deepcopy(board["entries"][0]), "scenario": "gallery"})
    base = reduce_board(board)
    assert {"chameleon", "chameleon [gallery]"} <= set(base["methods"])
    board["entries"][-1]["psr"]["sface"]["none"]["top1"] = 0.5
    failed = [(f.method, f.metric) for f in compare(base, board) if f.failed]
    assert failed == [("chameleon [gallery]", "psr_top1[sface|none]")]


USERS = ["ann", "bob", "cid", "dee"]


def _with_users(board: dict, drop: dict[str, float] | None = None) -> dict:
    """Chameleon's cells with per-user values (each user at the cell's value), ``drop`` lowering some users'
    dlib|jpeg value; the cell mean and the worst follow."""
    entry = board["entries"][0]
    per_user = {}
    for target, per_adv in entry["psr"].items():
        for adversary, cell in per_adv.items():
            values = {u: cell["top1"] - (drop or {}).get(u, 0.0) * (f"{target}|{adversary}" == "dlib|jpeg")
                      for u in USERS}
            per_user[f"{target}|{adversary}"] = values
            cell["top1"] = sum(values.values()) / len(values)
    entry["per_user_top1"] = per_user
    entry["psr_top1_worst"] = min(sum(v.values()) / len(v) for v in per_user.values())
    return board


def test_a_drop_in_one_user_is_within_the_users_spread(tmp_path):
    base = reduce_board(_with_users(_board()))
    now = _with_users(_board(), {"ann": 0.5})  # the cell mean drops 0.125, beyond any fixed 0.05
    assert not [f for f in compare(base, now) if f.failed]
    assert [f for f in compare(base, now, psr_tolerance=0.05) if f.failed]


def test_a_drop_in_every_user_fails_on_its_paired_interval(tmp_path, capsys):
    base = _write_run(tmp_path / "base", _with_users(_board()))
    assert main(["check", str(base), "--update-baseline", str(tmp_path / "b.json")]) == 0
    board = _with_users(_board(), {u: 0.1 for u in USERS})
    assert main(["check", str(_write_run(tmp_path / "now", board)), "--baseline", str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    assert "psr_top1[dlib|jpeg]" in out and "paired 95% CI" in out and "worse" in out
    failed = {f.metric for f in compare(json.loads((tmp_path / "b.json").read_text()), board) if f.failed}
    assert failed == {"psr_top1[dlib|jpeg]", "psr_top1_worst"}


def test_without_per_user_values_the_baseline_interval_decides():
    base = reduce_board(_board())  # every cell's interval is its value +- 0.05
    now = _board()
    now["entries"][0]["psr"]["sface"]["none"]["top1"] = 0.94
    assert not [f for f in compare(base, now) if f.failed]
    now["entries"][0]["psr"]["sface"]["none"]["top1"] = 0.96
    (finding,) = [f for f in compare(base, now) if f.failed]
    assert finding.metric == "psr_top1[sface|none]" and "baseline 95% CI" in finding.tolerance


def test_a_first_format_baseline_is_still_read(tmp_path, capsys):
    old = reduce_board(_board())
    for method in old["methods"].values():
        for key in ("psr_top1_ci", "per_user_top1", "psr_top1_worst_ci"):
            method.pop(key, None)
    old["format"] = "cloakbench-baseline/1"
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert _check(tmp_path, _board(), tmp_path / "old.json") == 0


def test_a_run_on_other_people_fails_with_that_reason(tmp_path):
    base_board, now = _board(), _board()
    base_board["run"]["users"], now["run"]["users"] = ["ann", "bob"], ["cid", "dee"]
    (finding,) = [f for f in compare(reduce_board(base_board), now) if f.failed]
    assert finding.metric == "users" and "other people" in finding.note
