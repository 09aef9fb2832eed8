"""The behaviour gate: every family of methods must still protect, white-box, as much as a recorded run did.

One real run of the smoke protocol (SFace, white-box, no adversary) on the embedded LFW users, every family's
representative at reduced effort (``FAMILIES``), through the same harness as ``bench run``. Each family's PSR@1
(mean over users) must not fall below the floor recorded in ``tests/data/behaviour_floors.json`` by more than the
users' spread there (their standard deviation, at least one probe photo's share: the resolution of the measure).
A floor that would let a method that protects nothing pass (at or below the clean photos' PSR) fails the test, so
an implementation that silently returns its input fails CI.

The floors come from a real run, never typed by hand: ``pytest tests/plugins/test_behaviour_gate.py --record-floors``
writes the file from the run it gates (then review the diff and commit it). Record again when a family's
method or its reduced settings change on purpose; the test says so when the file and ``FAMILIES`` disagree.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main

FLOORS = Path(__file__).parents[1] / "data" / "behaviour_floors.json"
RECORD = "pytest tests/plugins/test_behaviour_gate.py --record-floors"
TARGET, ADVERSARY = "sface", "none"  # the smoke protocol's surrogate, evaluated white-box
USERS, GALLERY = 3, 20

# family -> (representative method, reduced settings). Few steps, so some take larger ones (or a wider bound)
# than their defaults: the gate asks whether each family's machinery still protects white-box, in seconds per
# user on a CPU, not how much its paper's settings protect (that is the method table's job, docs/methods.md).
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "feature-space per-image": ("pgd", {"steps": 4}),
    "torchattacks adapter": ("pgd-ce", {"steps": 4}),
    "universal (UAP)": ("uap", {"iterations": 4, "step_size": "4/255", "epsilon": "16/255"}),
    "universal (OPOM)": ("opom-class-center", {"iterations": 4, "step": "4/255", "epsilon": "16/255"}),
    "universal (Chameleon)": ("chameleon", {"epochs": 4, "step": "4/255"}),
    "Fawkes": ("fawkes-high", {"steps": 20}),
    "LowKey": ("lowkey", {"steps": 5, "step_size": 0.01}),
    "TIP-IM": ("tip-im", {"steps": 5, "candidates": 2}),
    "FaceCloak": ("facecloak", {"iterations": 3, "step": "4/255", "epsilon": "24/255", "views": 2}),
    "region patch (AdvHat)": ("adv-hat", {"iterations": 40}),
    "region patch (eyeglasses)": ("adv-glasses", {"iterations": 40, "step": 0.5, "region": "eye-bar",
                                                  "stop_probability": 0}),
}

# Families the gate runs no floor for yet, and why; their tests are expected to fail (strict: once a floor is
# recorded and the family taken off this list, the gate holds it).
PENDING: dict[str, str] = {}


def _setting(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.fixture(scope="module")
def gate_board(tmp_path_factory, request) -> dict[str, Any]:
    """The gate's run, as its leaderboard; with --record-floors, also written as the floors file."""
    from bench.core.paths import embedded_data_root

    out = tmp_path_factory.mktemp("gate") / "run"
    # the families whose tests run (all, or those ``-k`` selected; recording takes every family)
    selected = {item.callspec.params["family"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_family_protects_white_box_at_least_as_recorded"}
    families = {name: FAMILIES[name] for name in FAMILIES if name in selected and name not in PENDING}
    methods = [method for method, _ in families.values()]
    settings = [f"{method}.{key}={_setting(value)}" for method, overrides in families.values()
                for key, value in overrides.items()]
    args = ["run", "--suite", "smoke", "--data-root", str(embedded_data_root()), "--out", str(out),
            "--users", str(USERS), "--gallery-identities", str(GALLERY), "--methods", ",".join(methods),
            "--targets", TARGET, "--surrogates", TARGET, "--adversaries", ADVERSARY, "--threads", "1"]
    for setting in settings:
        args += ["--set", setting]
    assert main(args) == 0, "the gate's run failed: see the output above"
    board = json.loads((out / "leaderboard.json").read_text())
    if request.config.getoption("--record-floors"):
        FLOORS.parent.mkdir(exist_ok=True)
        FLOORS.write_text(json.dumps(record(board, families, FLOORS), indent=2) + "\n")
    return board


def measured(board: dict[str, Any], method: str) -> dict[str, float]:
    """A method's white-box PSR@1 per user in the gate's run."""
    entry = next(e for e in board["entries"] if e["method"] == method and e["scenario"] == "probe")
    assert entry["status"] == "ok", f"{method}: {entry['status']}: {entry.get('reason')}"
    return entry["per_user_top1"][f"{TARGET}|{ADVERSARY}"]


def record(board: dict[str, Any], recorded: dict[str, tuple[str, dict[str, Any]]], floors: Path) -> dict[str, Any]:
    """The floors file's contents from a gate run: the families it ran, the others kept from ``floors``."""
    env = board["run"].get("environment") or {}
    probes = {e["method"]: e.get("probes") for e in board["entries"]}
    kept = json.loads(floors.read_text()) if floors.is_file() else {}
    if kept.get("users") != board["run"]["users"]:
        kept = {}  # other users: the old floors do not hold
    families = dict(kept.get("families", {}))
    for family, (method, overrides) in recorded.items():
        per_user = measured(board, method)
        families[family] = {"method": method, "overrides": overrides, "psr_top1": statistics.fmean(per_user.values()),
                            "spread": statistics.pstdev(per_user.values()), "probes": probes[method],
                            "per_user": per_user, "git_revision": env.get("git_revision")}
    families = {name: families[name] for name in FAMILIES if name in families}
    return {"written_by": RECORD, "target": TARGET, "adversary": ADVERSARY, "users": board["run"]["users"],
            "clean_psr_top1": 1 - board["clean"][TARGET]["top1_accuracy"],
            "torch": env.get("torch"), "families": families}


@pytest.fixture(scope="module")
def floors() -> dict[str, Any]:
    if not FLOORS.is_file():
        pytest.fail(f"{FLOORS} is missing: record it with `{RECORD}`")
    return json.loads(FLOORS.read_text())


@pytest.mark.parametrize("family", [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=PENDING[name]))
                                    if name in PENDING else name for name in FAMILIES])
def test_family_protects_white_box_at_least_as_recorded(family, gate_board, floors):
    method, overrides = FAMILIES[family]
    floor = floors["families"].get(family)
    assert floor, f"{family}: no floor recorded: record it with `{RECORD} -k '{family}'`"
    assert floor["method"] == method and floor["overrides"] == overrides, (
        f"{family}: the floors file was recorded for {floor['method']} {floor['overrides']}, "
        f"the gate runs {method} {overrides}: record it again with `{RECORD}`")
    assert family not in PENDING or method in {e["method"] for e in gate_board["entries"]}, (
        f"{family} is pending ({PENDING[family]}): the gate does not run it")
    assert list(measured(gate_board, method)) == list(floor["per_user"]), (
        f"the gate's users changed: record the floors again with `{RECORD}`")
    allowance = max(floor["spread"], 1 / floor["probes"])  # one probe photo: the measure's resolution
    clean = 1 - gate_board["clean"][TARGET]["top1_accuracy"]
    assert floor["psr_top1"] - allowance > clean, (
        f"{family}: its floor {floor['psr_top1']:.3f} less the users' spread {allowance:.3f} does not exceed the clean "
        f"photos' PSR {clean:.3f}: a method that protects nothing would pass; raise {method}'s reduced settings")
    psr = statistics.fmean(measured(gate_board, method).values())
    assert psr >= floor["psr_top1"] - allowance, (
        f"{family} ({method} {overrides}): white-box PSR@1 on {TARGET} fell to {psr:.3f}, below its recorded floor "
        f"{floor['psr_top1']:.3f} less the users' spread {allowance:.3f} (clean photos: {clean:.3f})")
