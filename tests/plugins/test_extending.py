"""docs/extending.md: every example block runs as written, on real faces, and registers where it says."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from bench.measures.registry import METRICS
from bench.registry import ADVERSARIES, METHODS, TARGETS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
EXAMPLES = {METHODS: "example-mean-away", TARGETS: "example-sface-grey", ADVERSARIES: "example-median-3"}


@pytest.fixture
def clean_registries():
    """The examples register into the global registries: take them out again after the test."""
    yield
    for registry, name in EXAMPLES.items():
        registry._entries.pop(name, None)
    METRICS._metrics.pop("example_mae", None)


def test_every_example_of_the_extending_guide_runs(lfw_faces, sface, clean_registries, capsys, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 5  # method, target, adversary, metric, all together
    module = types.ModuleType("extending_examples")  # dataclasses look their module up in sys.modules
    module.FACES = lfw_faces["Colin_Powell"]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), module.__dict__)
    for registry, name in EXAMPLES.items():
        assert name in registry.names()
    assert METRICS.get("example_mae").label == "MAE"
    out = capsys.readouterr().out
    assert "grey SFace similarity to the user's mean" in out
    clean, protected = (float(v) for v in re.findall(r"([-\d.]+) (?:clean|protected)", out))
    assert protected < clean  # the example method does move the grey recogniser away from the user
