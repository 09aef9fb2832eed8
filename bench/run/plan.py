"""The planner: a suite, a description of the data and of the plug-ins in, a graph of content-keyed tasks out.

Pure: no faces, no models, no files. Everything a task's result depends on is in the description (digests of
photos, configs, code versions, weight digests, calibrated thresholds, digests of what a method takes from its
run context), and it goes into the task's key.

Tasks (``TaskNode.body`` names the function in ``bench.run.tasks`` that runs it)
- ``clean/<target>``: clean embeddings of every gallery photo and every user's probe photos.
- ``protect/<method>/<user>/<seed>``: fit the method on the user's fit photos and protect the user's probes
  (and gallery photos when the suite has the gallery scenario); quality, budget used, cost.
- ``eval/<method>/<adversary>/<target>``: what the adversary makes of every user's protected photos.
- ``eval/clean/<target>``: the same on clean probes, the baseline (and, in the linkage scenarios, the clean
  probes linked to each other).
- ``photos/<method>/<user>/<seed>`` (photo space only): the user's protected probe photos as posted, and their
  whole-photo quality. In photo space the eval keys also hold the JPEG quality, the target's attacker detector
  and the photo keys; crop space (the default) adds nothing, so its keys are those of runs made before spaces.
- ``authorized/<method>/<target>``: key-holder accuracy, for methods whose protectors hold a key: rank-1
  accuracy after the owner removes the mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.run.provenance import content_key


@dataclass
class DataInfo:
    """The data of a run as digests: users, the gallery (with labels), each user's parts."""

    users: list[str]
    gallery: list[str]
    gallery_labels: list[str]
    probe: dict[str, list[str]]
    fit: dict[str, list[str]]
    user_gallery: dict[str, list[str]]


@dataclass
class MethodInfo:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    status: str = "planned"  # or "unavailable" (with reason)
    reason: str | None = None
    kind: str | None = None
    budget: dict[str, float] | None = None
    config: dict[str, Any] | None = None
    code: str = ""
    holds_key: bool = False
    needs: dict[str, str] = field(default_factory=dict)  # need label -> digest of what the run gives


@dataclass
class TargetInfo:
    name: str
    code: str = ""
    weights: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    calibration: str | None = None  # fingerprint of the LFW copy the thresholds were measured on
    differentiable: bool = True
    white_box: bool = False
    same_weights_as: list[str] = field(default_factory=list)
    attacker_detector: str = "yunet"  # photo space: the detector an attacker using this target runs


@dataclass
class AdversaryInfo:
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    kind: str = "transform"  # attacks.base.Adversary.kind: the leaderboard groups adversaries by it
    needs: dict[str, str] = field(default_factory=dict)  # need label -> digest (an adaptive adversary's people)


@dataclass
class Plugins:
    """The configured plug-ins of a run, described (``bench.run.plugins`` builds this)."""

    methods: list[MethodInfo]
    targets: list[TargetInfo]  # the available evaluated targets
    adversaries: list[AdversaryInfo]
    surrogates: list[tuple[str, list[str], str]]  # (name, weight digests, code version)
    unavailable_targets: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"  # where they run (float results differ between devices)


@dataclass
class TaskNode:
    key: str
    kind: str  # as recorded in the store: clean, protect, eval, authorized
    label: str
    body: str  # the function of bench.run.tasks that runs it
    args: dict[str, Any]
    deps: list[str] = field(default_factory=list)


@dataclass
class TaskGraph:
    tasks: list[TaskNode]
    meta: dict[str, Any]  # the plan as the store keeps it (what the leaderboard reads)


def plan_run(suite, data: DataInfo, plugins: Plugins) -> TaskGraph:
    """Expand ``suite`` (``bench.run.suites.Suite``) over ``data`` and ``plugins`` into tasks, dependencies first."""
    tasks: list[TaskNode] = []
    scenarios = sorted(suite.scenarios)
    # how probe queries are scored; the default leaves the keys of runs made before protocols existed unchanged
    protocol_part = () if suite.protocol == "templates" else (suite.protocol,)
    photo_space = suite.space == "photo"
    # the clean baseline links clean photos in the linkage scenarios: they enter its key (nothing without them);
    # they link the probe photos a protect task makes anyway, so they stay out of its key
    linkage_part = tuple(s for s in scenarios if s.startswith("linkage"))
    protect_scenarios = [s for s in scenarios if s not in linkage_part]

    def space_part(t: TargetInfo, photo_keys: dict[str, str] | None = None) -> tuple:
        """What photo space adds to an evaluation key (nothing in crop space)."""
        if not photo_space:
            return ()
        return ("photo", suite.photo_jpeg_quality, t.attacker_detector, *([photo_keys] if photo_keys else []))
    meta: dict[str, Any] = {"users": data.users, "targets": {}, "methods": {},
                            "adversaries": [a.name for a in plugins.adversaries],
                            "adversary_kinds": {a.name: a.kind for a in plugins.adversaries},
                            "scenarios": list(suite.scenarios), "space": suite.space}
    clean_keys: dict[str, str] = {}
    for t in plugins.targets:
        key = content_key("clean", t.name, t.code, t.weights, data.gallery, data.probe, plugins.device)
        clean_keys[t.name] = key
        tasks.append(TaskNode(key, "clean", f"clean/{t.name}", "clean", {"target": t.name}))
        meta["targets"][t.name] = {"clean_key": key, "white_box": t.white_box, "differentiable": t.differentiable,
                                   "thresholds": t.thresholds, "calibration": t.calibration}
        if t.same_weights_as:
            meta["targets"][t.name]["same_weights_as"] = list(t.same_weights_as)
    for tname, reason in plugins.unavailable_targets.items():
        meta["targets"].setdefault(tname, {"unavailable": reason})

    for m in plugins.methods:
        entry: dict[str, Any] = {"overrides": m.overrides, "protect": {}, "eval": {}}
        meta["methods"][m.name] = entry
        if m.status == "unavailable":
            entry["status"], entry["reason"] = "unavailable", m.reason
            continue
        entry.update(kind=m.kind, budget=m.budget, config=m.config, status="planned",
                     surrogates=[s[0] for s in plugins.surrogates],
                     unseen_targets=[t.name for t in plugins.targets if not t.white_box])
        if m.needs:
            entry["needs"] = dict(m.needs)
        # a method too costly for the machine protects the first N users only (Suite.method_users)
        users = data.users[: suite.method_users.get(m.name, len(data.users))]
        for seed in suite.seeds:
            protect_keys = entry["protect"].setdefault(str(seed), {})
            for user in users:
                gallery = data.user_gallery[user] if "gallery" in scenarios else []
                key = content_key("protect", m.name, m.config, m.code, plugins.surrogates, data.fit[user],
                                  data.probe[user], gallery, seed, suite.quantize, asdict(suite.split),
                                  protect_scenarios, m.needs, plugins.device)
                protect_keys[user] = key
                tasks.append(TaskNode(key, "protect", f"protect/{m.name}/{user}/{seed}", "protect",
                                      {"method": m.name, "user": user, "seed": seed}))
            photo_keys: dict[str, str] = {}
            for user, pkey in protect_keys.items() if photo_space else ():
                photo_keys[user] = content_key("photos", pkey, suite.photo_jpeg_quality)
                tasks.append(TaskNode(photo_keys[user], "photos", f"photos/{m.name}/{user}/{seed}", "publish_photos",
                                      {"method": m.name, "user": user, "protect_key": pkey,
                                       "quality": suite.photo_jpeg_quality}, deps=[pkey]))
            if photo_keys:
                entry.setdefault("photos", {})[str(seed)] = dict(photo_keys)
            for a in plugins.adversaries:
                for t in plugins.targets:
                    key = content_key("eval", m.name, a.name, a.config, a.code, t.name, clean_keys[t.name],
                                      protect_keys, t.thresholds, t.calibration, scenarios, a.needs,
                                      *protocol_part, *space_part(t, photo_keys))
                    entry["eval"].setdefault(str(seed), {}).setdefault(a.name, {})[t.name] = key
                    args = {"method": m.name, "adversary": a.name, "target": t.name,
                            "clean_key": clean_keys[t.name], "protect_keys": dict(protect_keys),
                            "thresholds": dict(t.thresholds), **({"photo_keys": photo_keys} if photo_keys else {})}
                    tasks.append(TaskNode(key, "eval", f"eval/{m.name}/{a.name}/{t.name}", "evaluate", args,
                                          deps=[clean_keys[t.name], *protect_keys.values(), *photo_keys.values()]))
            if m.holds_key:
                for t in plugins.targets:
                    key = content_key("authorized", m.name, t.name, clean_keys[t.name], protect_keys)
                    entry.setdefault("authorized", {}).setdefault(str(seed), {})[t.name] = key
                    tasks.append(TaskNode(key, "authorized", f"authorized/{m.name}/{t.name}", "key_holder",
                                          {"method": m.name, "target": t.name, "clean_key": clean_keys[t.name],
                                           "protect_keys": dict(protect_keys)},
                                          deps=[clean_keys[t.name], *protect_keys.values()]))
    meta["clean_eval"] = {}
    for t in plugins.targets:
        key = content_key("eval-clean", t.name, clean_keys[t.name], t.thresholds, t.calibration, *protocol_part,
                          *space_part(t), *linkage_part)
        meta["clean_eval"][t.name] = key
        tasks.append(TaskNode(key, "eval", f"eval/clean/{t.name}", "evaluate_clean",
                              {"target": t.name, "clean_key": clean_keys[t.name], "thresholds": dict(t.thresholds)},
                              deps=[clean_keys[t.name]]))
    return TaskGraph(tasks, meta)


__all__ = ["plan_run", "DataInfo", "MethodInfo", "TargetInfo", "AdversaryInfo", "Plugins", "TaskNode", "TaskGraph"]
