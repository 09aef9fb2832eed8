"""A real run of the smoke suite shared by the tests of the tables generated into docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real run of two cheap methods on two embedded users, one of them reduced to one user by the suite."""
    from bench.core.paths import embedded_data_root
    from bench.run.suites import SUITES, get_suite

    out = tmp_path_factory.mktemp("tiny") / "run"
    mp = pytest.MonkeyPatch()
    mp.setitem(SUITES, "smoke", get_suite("smoke").with_overrides(method_users={"fgsm": 1}))
    try:
        assert main(["run", "--suite", "smoke", "--data-root", str(embedded_data_root()), "--out", str(out),
                     "--users", "2", "--gallery-identities", "8", "--methods", "pgd,fgsm",
                     "--adversaries", "none,jpeg-75", "--set", "pgd.steps=2", "--threads", "1"]) == 0
    finally:
        mp.undo()
    return out
