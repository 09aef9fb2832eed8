"""The workspace task bodies run on is read-only; what changes while tasks run lives in its caches."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from bench.registry import METHODS
from bench.run.assembly import standalone_context
from bench.run.tasks.protection import measured_rows
from bench.run.workspace import RunCaches, UnavailableMetrics, Workspace


@pytest.fixture(scope="module")
def workspace():
    context = standalone_context(device="cpu")  # the embedded LFW subset: no data root needed
    return Workspace(data=None, device="cpu", scenarios=("probe",), quantize=True, context=context,
                     methods={"pgd": METHODS.create("pgd")}, targets={}, adversaries={}, surrogates=[],
                     load_artifact=lambda key: {})


def test_the_workspace_cannot_be_changed(workspace):
    with pytest.raises(dataclasses.FrozenInstanceError):
        workspace.device = "cuda"
    with pytest.raises(TypeError):
        workspace.methods["pgd"] = METHODS.create("pgd")
    assert isinstance(workspace.surrogates, tuple)


def test_a_bound_method_is_a_copy(workspace):
    shared = workspace.methods["pgd"]
    bound = workspace.method("pgd", seed=7)
    assert bound is not shared and bound.context.seed == 7
    assert workspace.method("pgd", seed=8).context.seed == 8 and bound.context.seed == 7
    with pytest.raises(Exception, match="not bound to a run context"):
        shared.context  # noqa: B018


def test_an_unavailable_metric_is_reported_once_then_left_out():
    said = []
    unavailable = UnavailableMetrics(report=said.append)
    calls = []

    def values_of(metric):
        calls.append(metric.row)
        if metric.row == "broken":
            raise RuntimeError("weights missing")
        return torch.tensor([0.25, 0.75])

    metrics = [SimpleNamespace(row="broken", label="Broken", clamp_max=None),
               SimpleNamespace(row="fine", label="Fine", clamp_max=None)]
    for _ in range(2):
        rows = measured_rows(unavailable, metrics, values_of, {"user": "u"})
        assert [(r.metric, r.value) for r in rows] == [("fine", 0.5)]
    assert calls == ["broken", "fine", "fine"]
    assert len(said) == 1 and "Broken unavailable" in said[0] and "broken" in unavailable


def test_caches_make_each_attacker_view_once():
    caches = RunCaches()
    assert caches.attacker_view("mtcnn", "cpu") is caches.attacker_view("mtcnn", "cpu")
