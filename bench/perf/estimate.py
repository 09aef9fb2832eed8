"""What a run will cost before it runs (``bench run --dry-run``), priced from rates measured on this machine.

The dry run plans on file lists (``bench.run.prepare.describe_files``: nothing is aligned) and prices every task:
- ``clean/<t>``: its photos over the target's forward rate (images per second through ``Target.embed``);
- ``protect/<m>/<u>``: the method's fit on the user's fit photos, its protect on the user's probes (and enrolled
  gallery photos in the gallery scenario), and the quality metrics. A method is timed on ``batch`` photos at
  two small values of its effort knob (``Method.effort``: steps, epochs or iterations) after a warm-up, as
  t(k) = a + b k, then scaled to its configured effort and to the user's photo counts;
- ``eval/<m>/<a>/<t>``: the adversary's transform and the target's forward pass on every user's protected photos;
  a training adversary (``Adversary.training_step``) adds, where the run first builds it, the owner's people
  protected by the method (the method's fit and protect rates x its people and photos, once per method and
  people), its training (seconds per step measured here x the steps its config takes, once per method, or per
  method and target for a fine-tuned model) and the adapted recogniser re-embedding the gallery and clean probes;
- ``authorized/<m>/<t>``: the de-obfuscated photos through the target; ``eval/clean/<t>``: ranking only.
- photo space: ``photos/<m>/<u>``, paste-back, JPEG and whole-photo quality per protected probe; each method's
  posted photos found once per attacker detector; the clean probes posted and embedded per target, found once.

Costs are CPU time on a CPU and wall time on a GPU, from rates measured and cached on this machine
(``bench.perf.machine_rates``). Runs record each task's CPU time beside its wall time (``cpu_seconds``), which
``measured_kinds`` sums per kind to check an estimate. A training adversary's cache of trained models (in the run
folder) is not looked at: the price is that of a first run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bench.core.progress import Reporter
from bench.data.datasets import locate_data
from bench.perf.machine_rates import RateMeter
from bench.perf.rates import Linear, RateCache, RateMissing
from bench.registry import TARGETS
from bench.run.assembly import bind_plugins, run_context
from bench.run.context import RunContext
from bench.run.photo_space import attacker_detector
from bench.run.plan import DataInfo, Plugins, TargetInfo, TaskGraph, plan_run
from bench.run.plugins import expand
from bench.run.prepare import describe_files
from bench.run.runner import Prices

# A per-image method slower than this per photo (half a minute: minutes at full settings on a busy CPU) is
# flagged in the plan.
SLOW_PER_PHOTO_S = 30.0


@dataclass
class KindCost:
    tasks: int = 0
    seconds: float = 0.0


@dataclass
class Estimate:
    kinds: dict[str, KindCost]
    methods: dict[str, dict[str, Any]]  # name -> kind, users, photos, fit_s_per_user, protect_s_per_photo, seconds
    notes: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    cache: str = ""
    # training adversary -> builds, protect_public_s (protecting the owner's people), train_s
    adaptation: dict[str, dict[str, float]] = field(default_factory=dict)
    tasks: dict[str, float] = field(default_factory=dict)  # task label -> seconds (a failing method's: absent)

    @property
    def seconds(self) -> float:
        return sum(k.seconds for k in self.kinds.values())


@dataclass
class Planned:
    graph: TaskGraph
    data: DataInfo
    methods: dict[str, Any]
    adversaries: dict[str, Any]
    context: RunContext


def task_kind(label: str) -> str:
    return "eval-clean" if label.startswith("eval/clean/") else label.split("/", 1)[0]


def measured_kinds(store: Any, cpu: bool = True) -> dict[str, KindCost]:
    """What a finished run's tasks took, per kind, to hold an estimate against: their CPU time (``cpu``, what an
    estimate on a CPU is in) or their wall time."""
    kinds: dict[str, KindCost] = {}
    rows = store.db.execute("SELECT label, seconds, info FROM tasks WHERE status = 'done'")
    for label, seconds, info in rows:
        cost = kinds.setdefault(task_kind(label), KindCost())
        cost.tasks += 1
        cost.seconds += (json.loads(info or "{}").get("cpu_seconds", 0.0) if cpu else seconds) or 0.0
    return kinds


class Estimator(RateMeter):
    """Prices a suite's tasks on this machine from the rates ``RateMeter`` measures."""

    def plan(self) -> Planned:
        """The suite planned on file lists, with its methods (needs resolved) and adversaries created."""
        source = locate_data(self.root, self.suite.dataset)
        data = describe_files(self.suite, source.dataset)
        bound = bind_plugins(self.suite, run_context(source, data.users, self.aligner, self.device,
                                                     self.suite.split.seed), self.reporter)
        targets = []
        for name in expand(self.suite.targets, TARGETS):
            ok, reason = TARGETS.entry(name).availability()
            if ok:
                cls = TARGETS.entry(name).cls
                targets.append(TargetInfo(name, differentiable=cls.differentiable))
            else:
                self.unavailable[name] = reason or "unavailable"
        plugins = Plugins(bound.method_infos, targets, bound.adversary_infos,
                          [(s, [], "") for s in self.suite.surrogates], dict(self.unavailable), self.device)
        return Planned(plan_run(self.suite, data, plugins), data, bound.methods, bound.adversaries, bound.context)

    def estimate(self) -> Estimate:
        return self.price(self.plan())

    def price(self, planned: Planned) -> Estimate:
        """Each task of ``planned`` priced (a run prices its own plan this way for its ETA)."""
        graph, data, methods, adversaries, context = (planned.graph, planned.data, planned.methods,
                                                      planned.adversaries, planned.context)
        gallery_scenario = "gallery" in self.suite.scenarios
        kinds: dict[str, KindCost] = {}
        per_method: dict[str, dict[str, float]] = {}
        notes: list[str] = []
        surrogates = list(self.suite.surrogates)
        rate_of: dict[str, float | None] = {}
        failing: set[str] = set()

        def forward(target: str, photos: int) -> float:
            if target not in rate_of:
                rate_of[target] = self.target_rate(target)
            rate = rate_of[target]
            return photos / rate if rate else 0.0

        # training adversaries: the owner's people protected once per method (and people, seed), shared by the
        # adversaries that ask for the same; what is trained, once per method (and target, for a fine-tuned
        # model); an adapted recogniser re-embeds the gallery and the clean probes (attacks._adaptive)
        adaptation: dict[str, dict[str, float]] = {}
        built: set[tuple] = set()

        def adapt(name: str, adversary: Any, mname: str, target: str) -> float:
            people = next((n.args for n in adversary.needs() if n.what == "identity_bank"), None)
            seed = getattr(adversary.config, "seed", 0)
            facts = adaptation.setdefault(name, {"builds": 0, "protect_public_s": 0.0, "train_s": 0.0})
            seconds = forward(target, len(data.gallery) + sum(len(v) for v in data.probe.values()))
            if people and ("public", mname, people, seed) not in built and mname not in failing:
                built.add(("public", mname, people, seed))
                identities, photos = people
                try:
                    rates = self.method_cost(mname, methods[mname], surrogates, context)
                except ValueError:
                    return seconds  # the method fails here: its protect tasks say why (priced below)
                method = methods[mname]
                effort = getattr(method.config, method.effort) if method.effort else 0
                public = identities * (Linear(**rates["fit"]).seconds(photos, effort)
                                       + Linear(**rates["protect"]).seconds(photos, effort))
                facts["protect_public_s"] += public
                seconds += public
            trained = (name, mname, target if adversary.trains_per_target else None)
            if trained not in built:
                built.add(trained)
                rate = self.training(name, adversary, target)
                if rate is not None:
                    facts["builds"] += 1
                    facts["train_s"] += rate["seconds_per_step"] * rate["steps"]
                    seconds += rate["seconds_per_step"] * rate["steps"]
            return seconds

        quality = None
        # photo space: a posted photo is found once per attacker detector (bench.run.photo_space.AttackerView)
        detectors = sorted({attacker_detector(TARGETS.entry(t).cls) for t in expand(self.suite.targets, TARGETS)
                            if t not in self.unavailable}) if self.suite.space == "photo" else []
        post_s, quality_s = (self.photo_seconds(detectors[0])[k] if detectors else 0.0 for k in ("post_s", "quality_s"))
        detect_s = sum(self.photo_seconds(d)["detect_s"] for d in detectors)  # per posted photo, every detector
        clean_posted, detected = False, set()
        prices: dict[str, float] = {}
        for task in graph.tasks:
            kind = task_kind(task.label)
            cost = kinds.setdefault(kind, KindCost())
            cost.tasks += 1
            args = task.args
            seconds = 0.0
            if kind == "clean":
                seconds = forward(args["target"], len(data.gallery) + sum(len(v) for v in data.probe.values()))
            elif kind == "protect":
                name, user = args["method"], args["user"]
                method = methods[name]
                if name in failing:
                    continue
                try:
                    rates = self.method_cost(name, method, surrogates, context)
                except ValueError as exc:  # its protect tasks would fail alike in the run: say so, price the rest
                    failing.add(name)
                    notes.append(f"{name} fails on this machine with surrogates {', '.join(surrogates)} (its tasks "
                                 f"would be recorded as failed, and are not priced): {exc}")
                    continue
                effort = getattr(method.config, method.effort) if method.effort else 0
                shown = len(data.probe[user]) + (len(data.user_gallery[user]) if gallery_scenario else 0)
                fit_s = Linear(**rates["fit"]).seconds(len(data.fit[user]), effort)
                protect_s = Linear(**rates["protect"]).seconds(shown, effort)
                if quality is None:
                    quality = self.quality_seconds_per_photo()
                seconds = fit_s + protect_s + quality * len(data.probe[user])
                entry = per_method.setdefault(name, {"kind": method.kind, "users": 0, "fit_s": 0.0,
                                                     "protect_s": 0.0, "photos": 0, "seconds": 0.0})
                entry["users"] += 1
                entry["fit_s"] += fit_s
                entry["protect_s"] += protect_s
                entry["photos"] += shown
                entry["seconds"] += seconds
            elif kind == "eval":
                name = args["adversary"]
                adversary = adversaries[name]
                if adversary.kind == "adaptation":
                    seconds += adapt(name, adversary, args["method"], args["target"])
                protected = args["protect_keys"]  # the users the method protects (Suite.method_users)
                photos = sum(len(data.probe[u]) for u in protected)
                if gallery_scenario:
                    photos += sum(len(data.user_gallery[u]) for u in protected)
                seconds += forward(args["target"], photos) + photos * self.adversary_seconds_per_photo(name, adversary)
                posted = frozenset(args["protect_keys"].values())  # a method's photos at one seed
                if detectors and posted not in detected:  # found once per detector, in their first evaluation
                    detected.add(posted)
                    seconds += photos * detect_s
            elif kind == "photos":
                seconds = len(data.probe[args["user"]]) * (post_s + quality_s)
            elif kind == "eval-clean" and detectors:  # clean probes posted, found (once) and embedded per target
                probes = sum(len(v) for v in data.probe.values())
                seconds = probes * (post_s + (0.0 if clean_posted else detect_s)) + forward(args["target"], probes)
                clean_posted = True
            elif kind == "authorized":
                seconds = forward(args["target"], sum(len(data.probe[u]) for u in args["protect_keys"]))
            cost.seconds += seconds
            prices[task.label] = seconds
        total = sum(k.seconds for k in kinds.values())
        for entry in per_method.values():
            entry["fit_s_per_user"] = entry.pop("fit_s") / max(1, entry["users"])
            entry["protect_s_per_photo"] = entry.pop("protect_s") / max(1, entry["photos"])
        for name, facts in adaptation.items():
            each = "method and target" if adversaries[name].trains_per_target else "method"
            public = (f"protecting the owner's people {facts['protect_public_s'] / 60:.1f} min, " if
                      facts["protect_public_s"] else "the owner's people as another training adversary protected "
                      "them, ")
            notes.append(f"{name}: {public}training {facts['train_s'] / 60:.1f} min ({facts['builds']} build(s), one "
                         f"per {each}); what it trains is cached in the run folder and reused when the run resumes")
        for name, entry in per_method.items():
            if entry["kind"] == "per-image" and entry["protect_s_per_photo"] >= SLOW_PER_PHOTO_S:
                where = "this CPU" if self.device == "cpu" else self.device
                notes.append(f"{name}: {entry['protect_s_per_photo']:.0f} s per photo on {where}, "
                             f"{entry['seconds'] / 3600:.1f} h in all ({100 * entry['seconds'] / max(total, 1e-9):.0f}% "
                             "of the plan); its cost explodes on a CPU: run it on a GPU (--device cuda) or leave it "
                             "out (--methods)")
        return Estimate(kinds, per_method, sorted(set(notes)), dict(self.unavailable), str(self.cache.path),
                        adaptation, prices)


def cached_prices(suite: Any, graph: TaskGraph, workspace: Any, device: str, threads: int) -> Prices | None:
    """A run's tasks priced by label from the rates a dry run cached for this machine, device and thread count (a
    second or two; nothing is measured): ``Runner``'s pricer. A plug-in changed since keeps its last rate; None
    where one was never measured (no dry run yet)."""
    cache = RateCache(device, threads, read_only=True)
    estimator = Estimator(suite, workspace.data.dataset.root, device, threads, Reporter(), cache=cache)
    planned = Planned(graph, workspace.data.describe(), workspace.methods, workspace.adversaries, workspace.context)
    try:
        tasks = estimator.price(planned).tasks
    except RateMissing:
        return None
    return Prices(tasks, sorted(cache.stand_ins))


__all__ = ["Estimate", "Estimator", "KindCost", "Planned", "cached_prices", "measured_kinds", "task_kind"]
