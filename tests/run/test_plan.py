"""The planner on its own: a suite and descriptions in, a task graph out. No faces, no models."""

from __future__ import annotations

import dataclasses
import pickle
import re
from pathlib import Path

import pytest

from bench.run.plan import AdversaryInfo, DataInfo, MethodInfo, Plugins, TargetInfo, plan_run
from bench.run.suites import SPLITS, get_suite


def suite(**changes):
    return get_suite("smoke").with_overrides(**changes)


def data(**changes) -> DataInfo:
    base = DataInfo(users=["ann", "bob"], gallery=["g1", "g2", "g3", "g4"], gallery_labels=["ann", "bob", "cy", "cy"],
                    probe={"ann": ["pa"], "bob": ["pb"]}, fit={"ann": ["fa1", "fa2"], "bob": ["fb"]},
                    user_gallery={"ann": ["g1"], "bob": ["g2"]})
    return dataclasses.replace(base, **changes)


def plugins(**changes) -> Plugins:
    base = Plugins(
        methods=[MethodInfo("mask", kind="universal", budget={"linf": 0.03}, config={"eps": 0.03}, code="c1",
                            holds_key=True),
                 MethodInfo("cloak", kind="per-image", budget={"dssim": 0.004}, config={"steps": 5}, code="c2",
                            needs={"identity_bank/40x2": "bank0"}),
                 MethodInfo("broken", status="unavailable", reason="no bank")],
        targets=[TargetInfo("rec1", code="t1", weights=["w1"]),
                 TargetInfo("rec2", code="t2", weights=["w2"], thresholds={"far1e-3": 0.4}, calibration="lfw0")],
        adversaries=[AdversaryInfo("identity", {}, "a1"), AdversaryInfo("blur", {"sigma": 1}, "a2")],
        surrogates=[("rec1", ["w1"], "t1")],
        unavailable_targets={"rec3": "weights missing"},
    )
    return dataclasses.replace(base, **changes)


def keys(graph) -> dict[str, str]:
    return {t.label: t.key for t in graph.tasks}


def test_graph_shape_order_and_plan():
    graph = plan_run(suite(), data(), plugins())
    labels = [t.label for t in graph.tasks]
    # 2 clean, 2 x 2 protect, 2 methods x 2 adversaries x 2 targets eval, 2 authorized (mask only), 2 clean evals
    assert len(labels) == 2 + 4 + 8 + 2 + 2 and len(set(keys(graph).values())) == len(labels)
    assert labels[:2] == ["clean/rec1", "clean/rec2"]
    assert {"authorized/mask/rec1", "authorized/mask/rec2"} <= set(labels)
    assert not any(label.startswith("authorized/cloak") for label in labels)
    assert not any("broken" in label for label in labels)
    seen = set()
    for task in graph.tasks:  # dependencies come first
        assert set(task.deps) <= seen, task.label
        seen.add(task.key)
    meta = graph.meta
    assert meta["methods"]["broken"] == {"overrides": {}, "protect": {}, "eval": {}, "status": "unavailable",
                                         "reason": "no bank"}
    assert meta["methods"]["cloak"]["needs"] == {"identity_bank/40x2": "bank0"}
    assert set(meta["methods"]["mask"]["authorized"]["0"]) == {"rec1", "rec2"}
    assert meta["targets"]["rec3"] == {"unavailable": "weights missing"}
    assert meta["targets"]["rec2"]["calibration"] == "lfw0"
    assert meta["clean_eval"]["rec1"] == keys(graph)["eval/clean/rec1"]
    assert meta["adversaries"] == ["identity", "blur"]


def test_tasks_are_plain_data():
    graph = plan_run(suite(), data(), plugins())
    assert pickle.loads(pickle.dumps(graph)) == graph
    evals = [t for t in graph.tasks if t.body == "evaluate" and t.args["target"] == "rec2"]
    assert all(t.args["thresholds"] == {"far1e-3": 0.4} for t in evals)


def changed(before, after) -> set[str]:
    a, b = keys(before), keys(after)
    assert a.keys() == b.keys()
    return {label for label in a if a[label] != b[label]}


def test_a_method_config_change_rekeys_only_that_methods_tasks():
    base = plan_run(suite(), data(), plugins())
    p = plugins()
    p.methods[1] = dataclasses.replace(p.methods[1], config={"steps": 6})
    touched = changed(base, plan_run(suite(), data(), p))
    assert touched == {label for label in keys(base) if "/cloak/" in label or label.startswith("protect/cloak")}


def test_what_a_method_takes_from_the_run_enters_its_keys():
    base = plan_run(suite(), data(), plugins())
    p = plugins()
    p.methods[1] = dataclasses.replace(p.methods[1], needs={"identity_bank/40x2": "another bank"})
    touched = changed(base, plan_run(suite(), data(), p))
    assert touched and all("cloak" in label for label in touched)


def test_thresholds_an_adversarys_people_and_photos_rekey_what_they_touch():
    base = plan_run(suite(), data(), plugins())
    p = plugins()
    p.targets[1] = dataclasses.replace(p.targets[1], thresholds={"far1e-3": 0.41})
    touched = changed(base, plan_run(suite(), data(), p))
    assert touched == {label for label in keys(base) if label.startswith("eval/") and label.endswith("/rec2")}

    p = plugins()
    p.adversaries[1] = dataclasses.replace(p.adversaries[1], needs={"identity_bank/12x4": "other people"})
    touched = changed(base, plan_run(suite(), data(), p))
    assert touched == {label for label in keys(base) if label.startswith("eval/") and "/blur/" in label}

    touched = changed(base, plan_run(suite(), data(fit={"ann": ["fa1", "fa2"], "bob": ["other"]}), plugins()))
    assert {"protect/mask/bob/0", "protect/cloak/bob/0"} <= touched
    assert not any(label.startswith(("clean/", "protect/mask/ann", "eval/clean")) for label in touched)


def test_gallery_photos_enter_protect_keys_only_in_the_gallery_scenario():
    probe_only, both = suite(), suite(scenarios=("probe", "gallery"))
    moved = data(user_gallery={"ann": ["other"], "bob": ["g2"]})
    assert not changed(plan_run(probe_only, data(), plugins()), plan_run(probe_only, moved, plugins()))
    assert "protect/mask/ann/0" in changed(plan_run(both, data(), plugins()), plan_run(both, moved, plugins()))


def test_the_scoring_protocol_rekeys_every_evaluation_and_nothing_else():
    base = plan_run(suite(), data(), plugins())
    touched = changed(base, plan_run(suite(protocol="opom-pairs"), data(), plugins()))
    assert touched == {label for label in keys(base) if label.startswith("eval/")}


def test_crop_space_keeps_the_keys_of_runs_made_before_spaces():
    """Keys recorded from this plan before ``Suite.space`` existed: crop space (the default) must keep them, so
    that every finished run resumes and scores as it did."""
    for graph in (plan_run(suite(), data(), plugins()), plan_run(suite(space="crop"), data(), plugins())):
        assert {label: keys(graph)[label] for label in ("clean/rec1", "protect/mask/ann/0", "eval/mask/blur/rec2",
                                                         "eval/clean/rec2")} == {
            "clean/rec1": "5777200d274718eb6bb5fafe", "protect/mask/ann/0": "dc06b1203d89cdcbefc870d5",
            "eval/mask/blur/rec2": "8fc406de8d23c28f1e05b57d", "eval/clean/rec2": "cf5c5e39d9a0464c5259794d"}
        assert not any(t.kind == "photos" for t in graph.tasks)


def test_photo_space_adds_photo_tasks_and_rekeys_only_the_evaluations():
    crop = plan_run(suite(), data(), plugins())
    photo = plan_run(suite(space="photo"), data(), plugins())
    before, after = keys(crop), keys(photo)
    added = set(after) - set(before)
    # one posted-photos task per method, user and seed (the unavailable method has none)
    assert added == {f"photos/{m}/{u}/0" for m in ("mask", "cloak") for u in ("ann", "bob")}
    shared = set(before)
    # the protected photos are reused: re-scoring a finished run in photo space protects nothing again
    assert {label for label in shared if before[label] != after[label]} == {
        label for label in shared if label.startswith("eval/")}
    by_label = {t.label: t for t in photo.tasks}
    evaluation = by_label["eval/mask/blur/rec1"]
    assert evaluation.args["photo_keys"]["ann"] == after["photos/mask/ann/0"]
    assert after["photos/mask/ann/0"] in evaluation.deps
    assert by_label["photos/mask/ann/0"].deps == [after["protect/mask/ann/0"]]
    assert photo.meta["space"] == "photo" and photo.meta["methods"]["mask"]["photos"]["0"]["bob"] == \
        after["photos/mask/bob/0"]
    # the JPEG quality the attacker sees and the target's detector re-key the evaluations they judge
    other_quality = keys(plan_run(suite(space="photo", photo_jpeg_quality=75), data(), plugins()))
    assert {label for label in after if after[label] != other_quality[label]} == {
        label for label in after if label.startswith(("eval/", "photos/"))}
    mtcnn = plugins(targets=[dataclasses.replace(plugins().targets[0], attacker_detector="mtcnn"),
                             plugins().targets[1]])
    rekeyed = changed(photo, plan_run(suite(space="photo"), data(), mtcnn))
    assert rekeyed == {label for label in after if label.startswith("eval/") and label.endswith("/rec1")}


@pytest.mark.parametrize("changes, message", [
    ({"space": "pixels"}, "space='pixels'; allowed: crop, photo"),
    ({"space": "photo", "scenarios": ("probe", "gallery")}, "space=photo scores the probe scenario only"),
    ({"photo_jpeg_quality": 0}, "photo_jpeg_quality"),
])
def test_bad_space_settings_are_refused(changes, message):
    from bench.core.validation import UsageError

    with pytest.raises(UsageError, match=re.escape(message)):
        suite(**changes)


def test_a_split_preset_rekeys_the_protect_tasks():
    base = plan_run(suite(), data(), plugins())
    touched = changed(base, plan_run(suite(split=SPLITS["chameleon"]), data(), plugins()))
    assert {label for label in keys(base) if label.startswith("protect/")} <= touched


def test_the_device_rekeys_everything_computed_on_it():
    base = plan_run(suite(), data(), plugins())
    assert changed(base, plan_run(suite(), data(), plugins(device="cuda"))) == set(keys(base))


def test_seeds_multiply_protect_and_eval_tasks():
    graph = plan_run(suite(seeds=(0, 1)), data(), plugins())
    protect = [t for t in graph.tasks if t.kind == "protect"]
    assert len(protect) == 8 and set(graph.meta["methods"]["mask"]["protect"]) == {"0", "1"}


def test_the_harness_rooms_name_no_plugin():
    """The harness never names a plug-in: suite presets (configuration) are the only place. Every module of the
    rooms that run, prepare data, load models, measure and price is read; the report and the commands name the
    oblivious adversary ``none`` and CLI defaults, which are configuration too."""
    from bench.registry import ADVERSARIES, METHODS, TARGETS

    names = set(METHODS.names()) | set(ADVERSARIES.names()) | set(TARGETS.names())
    bench_dir = Path(__file__).parents[2] / "bench"
    # configuration, not code: the suites' presets, and the default recogniser that tells a folder's person
    # from others in a photo with several faces (a field default of IdentityCheck); a comment's example name
    allowed = {"run/suites.py": names, "data/identity_faces.py": {"sface"}, "models/weights.py": {"sface"}}
    modules = [p for room in ("core", "data", "models", "measures", "run", "perf")
               for p in sorted((bench_dir / room).rglob("*.py"))]
    assert len(modules) > 40
    for path in modules:
        part = path.relative_to(bench_dir).as_posix()
        literals = set(re.findall(r"\"([a-z0-9-]+)\"", path.read_text())) & names
        assert not literals - allowed.get(part, set()), f"bench/{part} names plug-ins {sorted(literals)}"


@pytest.mark.parametrize("field", ["users", "gallery"])
def test_data_changes_rekey_clean_tasks(field):
    base = plan_run(suite(), data(), plugins())
    other = data(**{field: ["ann"] if field == "users" else ["g1"]})
    if field == "users":
        other = dataclasses.replace(other, probe={"ann": ["pa"]}, fit={"ann": ["fa1"]}, user_gallery={"ann": ["g1"]})
        graph = plan_run(suite(), other, plugins())
        assert graph.meta["users"] == ["ann"]
        assert keys(graph)["clean/rec1"] != keys(base)["clean/rec1"]
    else:
        assert keys(plan_run(suite(), other, plugins()))["clean/rec1"] != keys(base)["clean/rec1"]


def test_a_reduced_method_protects_the_first_users_only():
    """Suite.method_users: a costly method protects the first N users; its protect keys are those it would have
    had unreduced, the other methods are untouched, and its evaluations cover its users only."""
    base = plan_run(suite(), data(), plugins())
    graph = plan_run(suite(method_users={"cloak": 1}), data(), plugins())
    protected = graph.meta["methods"]["cloak"]["protect"]["0"]
    assert list(protected) == ["ann"] and protected["ann"] == keys(base)["protect/cloak/ann/0"]
    before, after = keys(base), keys(graph)
    assert set(before) - set(after) == {"protect/cloak/bob/0"}
    assert {label for label in after if after[label] != before[label]} == {
        f"eval/cloak/{a}/{t}" for a in ("identity", "blur") for t in ("rec1", "rec2")}
    evals = [t for t in graph.tasks if t.label.startswith("eval/cloak/")]
    assert all(t.args["protect_keys"] == {"ann": protected["ann"]} for t in evals)
    with pytest.raises(ValueError, match="method_users"):
        suite(method_users={"cloak": 5})
