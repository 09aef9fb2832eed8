"""Registry behaviour, and every registered plug-in exercised by being registered."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from bench.registry import ADVERSARIES, METHODS, TARGETS, ConfigError, Registry, UnknownNameError


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownNameError) as err:
        METHODS.create("no-such-method")
    msg = str(err.value)
    assert "no-such-method" in msg and "pgd" in msg


def test_create_applies_preset_then_overrides():
    jpeg = ADVERSARIES.create("jpeg-30")
    assert jpeg.config.quality == 30 and jpeg.name == "jpeg-30"
    assert ADVERSARIES.create("jpeg-30", quality=60).config.quality == 60


def test_bad_config_key_and_value_are_clear():
    with pytest.raises(ConfigError, match="valid keys"):
        METHODS.create("pgd", epsilonn=0.1)
    with pytest.raises(ConfigError, match="quality"):
        ADVERSARIES.create("jpeg", quality=0)


def test_variants_and_duplicates():
    reg = Registry("thing", "cloakbench.none")

    @dataclass
    class Cfg:
        size: int = 1

    @reg.register("big", size=9)
    @reg.register("small")
    class Thing:
        Config = Cfg

        def __init__(self, config):
            self.config = config

    assert reg.create("big").config.size == 9 and reg.create("small").config.size == 1
    with pytest.raises(ValueError, match="registered twice"):

        @reg.register("big")
        class Other:
            pass


def test_entry_points_find_builtin_plugins():
    assert "pgd" in METHODS.names()
    assert {"none", "jpeg-75"} <= set(ADVERSARIES.names())
    assert "sface" in TARGETS.names()
    assert not METHODS.broken_modules(), METHODS.broken_modules()
    assert not ADVERSARIES.broken_modules(), ADVERSARIES.broken_modules()


def test_describe_schema_for_list_json():
    for registry in (METHODS, ADVERSARIES, TARGETS):
        rows = registry.describe()
        json.dumps(rows)
        for row in rows:
            assert isinstance(row["name"], str) and isinstance(row["available"], bool)
            assert row["reason"] is None if row["available"] else isinstance(row["reason"], str)
    for row in TARGETS.describe():
        assert isinstance(row.get("differentiable"), bool), row


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_declares_kind_budget_and_config(name):
    method = METHODS.create(name)
    assert method.kind in ("universal", "per-image")
    budget = method.budget().as_dict()
    assert budget, f"{name} declares no budget"
    note = budget.pop("note", "")
    assert isinstance(note, str) and all(v > 0 for v in budget.values())
    assert budget or note, f"{name} declares neither a bound nor what limits its change"
    listed = next(r for r in METHODS.describe() if r["name"] == name)
    assert listed["budget"] == method.budget().text()


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_names_its_reference_and_deviations(name):
    """`bench list methods --json` says what each method follows and what still differs; our own variants of a
    paper's method say so first."""
    listed = next(r for r in METHODS.describe() if r["name"] == name)
    assert isinstance(listed["reference"], str) and listed["reference"], name
    assert isinstance(listed["deviations"], list) and listed["deviations"], name
    assert all(isinstance(d, str) and d for d in listed["deviations"])
    assert isinstance(listed["reported"], list)
    for r in listed["reported"]:
        assert 0 <= r["value"] <= 1 and r["source"] and r["metric"].startswith("psr_")
    ours = name.endswith(("-signavg", "-8", "-mmd", "-face-dssim")) or name.startswith("fawkes-v03")
    assert listed["deviations"][0].startswith("OUR VARIANT") == ours, listed["deviations"][0]


def test_budget_text_follows_the_config():
    from methods.base import Budget

    assert Budget(linf=16 / 255).text() == "linf 16/255"
    assert Budget(linf=0.05).text() == "linf 0.05"
    assert Budget(linf=15 / 255, dssim=0.007).text() == "dssim 0.007, linf 15/255"
    assert METHODS.entry("pgd").cls.describe(epsilon=4 / 255)["budget"] == "linf 4/255"


@pytest.mark.parametrize("name", ADVERSARIES.names())
def test_every_adversary_keeps_shape_and_range_on_real_faces(name, wild_faces):
    adversary = ADVERSARIES.create(name)
    x = torch.stack([wild_faces["person_a_1"], wild_faces["person_b_1"]])
    y = adversary.apply(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0 and float(y.max()) <= 1
