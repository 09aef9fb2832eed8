"""The metric registry: core quality metrics, and pyiqa's registered only when pyiqa imports."""

from __future__ import annotations

import importlib
import importlib.util
import types

import pytest
import torch

import bench.metric_registry as registry_module
from bench.metric_registry import METRICS, Metric, MetricRegistry, register_pyiqa


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
