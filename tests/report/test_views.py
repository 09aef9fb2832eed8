"""The views: store -> leaderboard -> tables -> report, one way; every measure comes from the metric registry.

A metric registered in ``bench.measures.registry.METRICS`` must appear in the leaderboard JSON, CSV and Markdown,
the report's table and ``bench check`` with no other edit; ``bench/`` has no import cycle and no oversized module.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bench.measures.registry import METRICS, Metric
from bench.report import gate as check
from bench.report import leaderboard, tables
from bench.report.html import render_html
from bench.run.store import ResultRow, RunStore

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_imports(path: Path) -> set[str]:
    """bench modules ``path`` imports (module-level and inside functions), as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("bench.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            names.add(node.module)
            # "from bench import leaderboard" imports the module bench.report.leaderboard
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(BENCH.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in BENCH.rglob("*.py")}


def test_bench_has_no_import_cycle():
    modules = _modules()
    graph = {name: sorted(i for i in _bench_imports(path) if i in modules and i != name)
             for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dep in graph[name]:
            if state.get(dep) == "open":
                cycle = trail[trail.index(dep):] + [dep] if dep in trail else [name, dep]
                pytest.fail("import cycle in bench/: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert "bench.report.html" not in graph["bench.report.leaderboard"] and "bench.report.leaderboard" not in graph["bench.report.tables"]


SHARPNESS = Metric("sharpness", "sharpness_mean", "Sharpness", "quality", "a test-only measure", True, ".2f",
                   tolerance=0.1)


@pytest.fixture
def with_sharpness(monkeypatch):
    """A quality metric registered for one test (the registry is global)."""
    monkeypatch.setitem(METRICS._metrics, SHARPNESS.row, SHARPNESS)
    return SHARPNESS


def _store(run_dir: Path, sharpness: list[float]) -> RunStore:
    """A finished run of one method on two users, one target, one adversary, written through the store's API."""
    store = RunStore(run_dir)
    users = ["ann", "bob"]
    plan = {"users": users, "targets": {"sface": {"white_box": True}}, "adversaries": ["none"],
            "scenarios": ["probe"], "clean_eval": {}, "surrogates": ["sface"], "device": "cpu",
            "data": {"root": "/data", "identities": 20},
            "methods": {"pgd": {"kind": "per-image", "budget": {"linf": 8 / 255}, "config": {}, "overrides": {},
                                "protect": {"0": {u: f"protect-{u}" for u in users}},
                                "eval": {"0": {"none": {"sface": "eval"}}}}}}
    store.set_meta("plan", plan)
    store.set_meta("suite", {"name": "unit"})
    for user, value in zip(users, sharpness, strict=True):
        rows = [ResultRow(m, v, method="pgd", user=user) for m, v in
                (("ssim", 0.9), ("psnr", 35.0), ("lpips", 0.1), ("linf", 8 / 255), ("fit_s", 1.0),
                 ("protect_ms_per_photo", 20.0), ("probes", 3), ("sharpness", value))]
        store.record(f"protect-{user}", "protect", user, "done", 1.0, {"info": {}}, rows)
    store.record("eval", "eval", "eval", "done", 1.0, {}, [
        ResultRow("psr_top1", v, method="pgd", scenario="probe", adversary="none", target="sface", user=u)
        for u, v in zip(users, (0.5, 1.0), strict=True)])
    return store


def test_a_registered_metric_reaches_every_view(tmp_path, with_sharpness):
    store = _store(tmp_path / "run", [0.25, 0.75])
    board = leaderboard.build(store)
    store.close()
    entry = board["entries"][0]
    assert entry["sharpness_mean"] == pytest.approx(0.5) and entry["probes"] == 6 and entry["users"] == 2
    assert "sharpness_mean" in tables.to_csv(board).splitlines()[0].split(",")
    md = tables.to_markdown(board)
    assert "| Sharpness |" in md.splitlines()[0] and "| 0.50 |" in md.splitlines()[2]
    page = render_html(json.loads(leaderboard.to_json(board)))
    assert ">Sharpness<" in page and ">0.50<" in page
    base = check.reduce_board(board)
    assert base["methods"]["pgd"]["sharpness_mean"] == pytest.approx(0.5)
    entry["sharpness_mean"] = 0.3  # worse by more than its tolerance
    failed = [(f.metric, f.note) for f in check.compare(base, board) if f.failed]
    assert failed == [("sharpness_mean", "worse")]


def test_views_follow_the_registry_order(tmp_path):
    store = _store(tmp_path / "run", [0.0, 0.0])
    board = leaderboard.build(store)
    store.close()
    head = tables.to_csv(board).splitlines()[0].split(",")
    # whole-photo measures show only where a photo-space run made them
    measures = [m.entry for m in METRICS.all() if m.group != "count" and m.region != "photo"]
    start = 6 + len(tables.ROBUSTNESS)  # method, kind, scenario, status, worst, mean, robustness summaries
    assert head[start:start + len(measures)] == measures
    md_head = tables.to_markdown(board).splitlines()[0]
    labels = [m.label for m in METRICS.all() if m.group != "count" and m.region != "photo"]
    assert " | ".join(labels) in md_head


def test_costs_keep_three_significant_digits_in_every_view():
    from bench.report.formatting import number

    fmt = METRICS.get("protect_ms_per_photo").fmt
    # a universal mask applied in a quarter of a millisecond is not "0", nor a per-image attack "5.72e+04"
    assert [number(v, fmt) for v in (0.237, 2.884, 71.31, 1493.53, 57227.4, 0.0)] == \
        ["0.237", "2.88", "71.3", "1494", "57227", "0"]
    assert METRICS.get("fit_s").fmt == fmt


def test_split_half_without_a_defined_rho_says_so():
    """With few users a half can score every method alike; Spearman's rho is then undefined, not 'nan'."""
    check = {"scenario": "probe", "users": 4, "methods": 4, "all": {"rank_correlation": float("nan")},
             "unseen": {"rank_correlation": 0.5}}
    (note,) = tables.stability_notes({"stability": check})
    assert "over every target undefined" in note and "over unseen targets only 0.50" in note and "nan" not in note
