"""The Python API as docs/python-api.md shows it: every ``python`` block of the page runs, in order, in one
namespace, on the built-in data; and ``import bench`` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data.canvas import CANVAS_SIZE

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_import_bench_loads_no_torch():
    code = "import sys, bench; print(bench.__version__, 'torch' in sys.modules, 'bench.registry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False"]


def test_unknown_attribute_is_an_attribute_error():
    import bench

    with pytest.raises(AttributeError, match="no attribute 'load_mehtod'"):
        bench.load_mehtod  # noqa: B018


@pytest.mark.slow
def test_docs_python_api_runs(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("BENCH_DATA", raising=False)  # the page promises the built-in data
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks(DOC.read_text())
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out
    assert f"({CANVAS_SIZE}, {CANVAS_SIZE}, 3) uint8" in printed
    assert "did you mean 'steps'" in printed
    df = namespace["df"]
    assert set(df["metric"]) >= {"psr_top1", "psr_top1_worst"} and df["value"].between(0, 1e6).all()
    assert (df.query("metric == 'psr_top1'")["value"].between(0, 1)).all()
    protected, clean = namespace["protected"], namespace["clean"]
    assert float((protected - clean).abs().max()) <= namespace["pgd"].config.epsilon + 1e-6
    assert namespace["similarity"].max() < 0.99  # PGD moved every embedding
    users = namespace["users"]
    assert set(users.columns) >= {"user", "value"} and len(users) > len(users["user"].unique())


def test_load_results_tidy_matches_the_board():
    from bench.report.results_frame import load_board, tidy

    results = DOC.parent.parent / "results"
    board = load_board(results)
    df = tidy(board)
    entry = board["entries"][0]
    target, adversary = board["targets"][0], board["adversaries"][-1]
    row = df.query("method == @entry['method'] and target == @target and adversary == @adversary "
                   "and metric == 'psr_top1'")
    assert len(row) == 1
    assert row["value"].item() == entry["psr"][target][adversary]["top1"]
    assert [row["ci_low"].item(), row["ci_high"].item()] == entry["psr"][target][adversary]["top1_ci"]
    worst = df.query("method == @entry['method'] and metric == 'psr_top1_worst'")
    assert worst["target"].isna().all() and worst["value"].item() == entry["psr_top1_worst"]


def test_load_results_says_what_a_folder_lacks(tmp_path):
    from bench.report.results_frame import load_board

    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        load_board(tmp_path)
