"""The metric registry: core quality metrics, and pyiqa's registered only when pyiqa imports."""

from __future__ import annotations

import importlib
import importlib.util
import types

import pytest
import torch

import bench.measures.registry as registry_module
from bench.measures.registry import METRICS, Metric, MetricRegistry, PSRMeasure, register_pyiqa


def test_core_quality_metrics_in_order_and_pyiqa_only_when_installed():
    rows = [m.row for m in METRICS.quality()]
    assert rows[:3] == ["ssim", "psnr", "lpips"]
    installed = importlib.util.find_spec("pyiqa") is not None
    assert ("ms_ssim" in rows and "gmsd" in rows) == installed
    assert all(m.region in ("face", "canvas") for m in METRICS.quality())
    # the whole-photo versions are computed by photo-space runs only, never on canvases
    assert [m.row for m in METRICS.photo_quality()] == ["photo_ssim", "photo_psnr", "photo_lpips"]
    with pytest.raises(ValueError, match="region"):
        Metric("x", "x", "X", "quality", "", True, ".3f", region="hair")


def test_without_pyiqa_nothing_registers(monkeypatch):
    real = importlib.import_module

    def no_pyiqa(name, *args, **kwargs):
        if name == "pyiqa":
            raise ImportError("No module named 'pyiqa'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(registry_module.importlib, "import_module", no_pyiqa)
    fresh = MetricRegistry()
    assert register_pyiqa(fresh) == [] and fresh.all() == []


def test_with_pyiqa_its_metrics_register_and_compute_through_it(monkeypatch):
    calls = []

    def create_metric(name, device, as_loss):
        calls.append((name, str(device), as_loss))
        return lambda x, y: (x - y).abs().flatten(1).mean(1, keepdim=True)  # pyiqa returns N x 1

    fake = types.SimpleNamespace(create_metric=create_metric)
    real = importlib.import_module
    monkeypatch.setattr(registry_module.importlib, "import_module",
                        lambda name, *a, **k: fake if name == "pyiqa" else real(name, *a, **k))
    fresh = MetricRegistry()
    added = register_pyiqa(fresh)
    assert [m.row for m in added] == ["ms_ssim", "gmsd"] and [m.region for m in added] == ["canvas", "face"]
    x, y = torch.zeros(2, 3, 8, 8), torch.full((2, 3, 8, 8), 0.5)
    assert torch.equal(added[0].compute(x, y), torch.full((2,), 0.5))
    added[0].compute(x, y)
    assert calls == [("ms_ssim", "cpu", False)]  # created once per device


def test_psr_measures_are_declared_with_one_headline():
    names = [m.name for m in METRICS.psr()]
    assert names[:2] == ["top1", "top5"] and {"far1e-2", "far1e-3"} <= set(names)
    headline = METRICS.headline()
    assert headline.name == "top1" and headline.row == "psr_top1" and headline.worst_field == "psr_top1_worst"
    assert {m.kind for m in METRICS.psr()} >= {"identification", "verification"}
    fresh = MetricRegistry()
    fresh.register(PSRMeasure("a", "A", "identification", "", headline=True))
    with pytest.raises(ValueError, match="already the headline"):
        fresh.register(PSRMeasure("b", "B", "identification", "", headline=True))
    with pytest.raises(ValueError, match="bootstrap"):
        PSRMeasure("c", "C", "identification", "", aggregate="max")


def test_a_declared_psr_measure_reaches_the_leaderboard_cells(tmp_path, monkeypatch):
    """Adding a PSR measure is one declaration: its rows become cells with intervals; undeclared rows do not."""
    from bench.report import leaderboard
    from bench.run.store import ResultRow, RunStore

    monkeypatch.setitem(METRICS._psr, "linked", PSRMeasure("linked", "PSR linked", "linkage", "a test measure"))
    store = RunStore(tmp_path / "run")
    users = ["ann", "bob", "cid"]
    store.set_meta("plan", {"users": users, "targets": {"sface": {}}, "adversaries": ["none"], "scenarios": ["probe"],
                            "methods": {"pgd": {"kind": "per-image", "protect": {"0": {}},
                                                "eval": {"0": {"none": {"sface": "eval"}}}}}})
    rows = [ResultRow(metric, value, method="pgd", scenario="probe", adversary="none", target="sface", user=u)
            for u, top1 in zip(users, (0.5, 1.0, 0.0), strict=True)
            for metric, value in (("psr_top1", top1), ("psr_linked", 1 - top1), ("psr_undeclared", 0.3))]
    store.record("eval", "eval", "eval", "done", 1.0, {}, rows)
    board = leaderboard.build(store)
    store.close()
    cell = board["entries"][0]["psr"]["sface"]["none"]
    assert cell["linked"] == pytest.approx(0.5) and len(cell["linked_ci"]) == 2
    assert "undeclared" not in cell and cell["top1"] == pytest.approx(0.5)


def test_plugin_metrics_load_from_their_entry_point_group(monkeypatch):
    module = types.ModuleType("cloakbench_test_metric_plugin")
    fresh = MetricRegistry("cloakbench.test-metrics")

    def register_on_import():
        fresh.register(PSRMeasure("plugged", "PSR plugged", "identification", "from a plug-in package"))
        return module

    real = importlib.import_module
    monkeypatch.setattr(registry_module.importlib, "import_module",
                        lambda name, *a, **k: register_on_import() if name == module.__name__ else real(name, *a, **k))
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [
        types.SimpleNamespace(value=module.__name__)] if group == "cloakbench.test-metrics" else [])
    assert [m.name for m in fresh.psr()] == ["plugged"]
