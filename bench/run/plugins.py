"""The plug-ins of a run: names expanded and checked, created, loaded, and described for the planner.

Nothing here knows a plug-in by name: names come from the suite ("*" expands to every registered one), classes
from the registries. A target whose weights or runtime cannot be had is recorded ``unavailable`` and the run
carries on; a method whose required needs (``Method.needs()``) the run cannot meet is ``unavailable`` too.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.core.progress import Reporter
from bench.models.weights import WeightError, ensure
from bench.registry import ADVERSARIES, METHODS, TARGETS
from bench.run.context import ContextError, RunContext
from bench.run.photo_space import attacker_detector
from bench.run.plan import AdversaryInfo, MethodInfo, TargetInfo
from bench.run.provenance import code_version
from bench.run.suites import Suite


def expand(names: tuple[str, ...], registry) -> list[str]:
    """A suite's names: "*" stands for every registered one, "-NAME" leaves NAME out (``*,-square``: all but
    Square; how a long run is split between machines). An unknown name fails with the known ones."""
    left_out = [n[1:] for n in names if n.startswith("-")]
    chosen = [n for n in names if not n.startswith("-")]
    for name in left_out:
        registry.entry(name)
    if left_out and not chosen:
        raise ValueError(f"-{left_out[0]} leaves a name out of a list: give the list too, e.g. '*,-{left_out[0]}'")
    return [n for n in (registry.names() if "*" in chosen else chosen) if n not in left_out]


def validate_names(suite: Suite) -> None:
    """Fail before any work on names that are not registered (the message lists the known ones), on config
    overrides for methods or adversaries the run does not include, on bad config values, and on black-box surrogates."""
    methods = expand(suite.methods, METHODS)
    for registry, names in ((METHODS, methods), (ADVERSARIES, expand(suite.adversaries, ADVERSARIES)),
                            (TARGETS, expand(suite.targets, TARGETS)), (TARGETS, suite.surrogates)):
        for name in names:
            registry.entry(name)
    stray = sorted(set(suite.method_overrides) - set(methods))
    if stray:
        raise ValueError(f"config overrides for {stray}, which this run does not include "
                         f"(its methods: {', '.join(methods)})")
    for mname in methods:  # a bad config key or value fails here, not hours into the run
        METHODS.create(mname, **suite.method_overrides.get(mname, {}))
    adversaries = expand(suite.adversaries, ADVERSARIES)
    stray = sorted(set(suite.adversary_overrides) - set(adversaries))
    if stray:
        raise ValueError(f"config overrides for adversaries {stray}, which this run does not include "
                         f"(its adversaries: {', '.join(adversaries)})")
    for aname in adversaries:
        ADVERSARIES.create(aname, **suite.adversary_overrides.get(aname, {}))
    black_box = [name for name in suite.surrogates if not TARGETS.entry(name).cls.differentiable]
    if black_box:
        usable = [n for n in TARGETS.names() if TARGETS.entry(n).cls.differentiable]
        raise ValueError(f"surrogates {black_box} are black boxes (no gradients); differentiable targets: "
                         f"{', '.join(usable)}")


def load_targets(names: list[str], device: str, unavailable: dict[str, str], reporter: Reporter) -> dict[str, Any]:
    """Create, fetch and load targets; the ones that cannot run are added to ``unavailable`` with the reason."""
    loaded = {}
    for name in names:
        if name in unavailable:
            continue
        try:
            target = TARGETS.create(name, device=device)
            for spec in type(target).weights:
                ensure(spec, log=reporter.message)
            ok, reason = type(target).runtime_available()
            if not ok:
                raise WeightError(reason or "runtime unavailable")
            target.load()
            loaded[name] = target
        except (WeightError, ImportError, OSError, RuntimeError, ValueError) as exc:
            unavailable[name] = str(exc)
            reporter.message(f"[red]target {name} unavailable[/red]: {exc}")
    return loaded


def surrogate_twins(target: Any, surrogates: list[Any]) -> list[str]:
    """Surrogates (other than the target itself) that load one of the target's weight files, e.g. SFace run by
    OpenCV when SFace's torch port is a surrogate: judging on such a target is white-box, not transfer."""
    mine = {w.sha256 for w in type(target).weights}
    return [s.name for s in surrogates if s.name != target.name and mine & {w.sha256 for w in type(s).weights}]


def surrogate_ids(surrogates: list[Any]) -> list[tuple[str, list[str], str]]:
    """What the protect keys hold of the surrogates: name, digests of the weight files, code version."""
    return [(s.name, s.weight_digests(), code_version(s)) for s in surrogates]


def describe_targets(targets: dict[str, Any], surrogates: list[Any], suite: Suite, calibration: str | None,
                     reporter: Reporter) -> list[TargetInfo]:
    """The evaluated targets for the planner; thresholds come from the calibration on LFW copy ``calibration``."""
    from bench.measures.calibration_store import calibrations

    infos = []
    for name, target in targets.items():
        twins = surrogate_twins(target, surrogates)
        thresholds = target.thresholds(calibration)
        if not thresholds and calibrations(name):
            reporter.message(f"[yellow]target {name}[/yellow]: calibrated only on other LFW copies than the one under "
                             "this data root; verification PSR is left out (run `bench targets --data-root ...`)")
        infos.append(TargetInfo(name, code_version(target), target.weight_digests(), thresholds,
                                calibration if thresholds else None, target.differentiable,
                                name in suite.surrogates or bool(twins), twins, attacker_detector(target)))
    return infos


def create_methods(suite: Suite, context: RunContext, reporter: Reporter) -> tuple[dict[str, Any], list[MethodInfo]]:
    """Configured methods by name and their descriptions; every declared need is resolved to a digest here
    (banks are built, i.e. aligned, once), so that it enters the protect keys."""
    methods, infos = {}, []
    for mname in expand(suite.methods, METHODS):
        overrides = suite.method_overrides.get(mname, {})
        info = MethodInfo(mname, overrides)
        infos.append(info)
        try:
            method = METHODS.create(mname, **overrides)
        except Exception as exc:
            info.status, info.reason = "unavailable", str(exc)
            continue
        ok, reason = METHODS.entry(mname).availability()
        if not ok:
            info.status, info.reason = "unavailable", reason
            continue
        try:
            info.needs.update(resolve_needs(method.needs(), context))
        except ContextError as exc:
            info.status, info.reason = "unavailable", str(exc)
            reporter.message(f"[red]method {mname} unavailable[/red]: {exc}")
            continue
        info.kind, info.budget, info.config = method.kind, method.budget().as_dict(), asdict(method.config)
        info.code, info.holds_key = code_version(method), method.holds_key
        methods[mname] = method
    return methods, infos


def resolve_needs(needs, context: RunContext) -> dict[str, str]:
    """Need label -> content digest (``bench.run.context.Need``); an optional need that cannot be met is recorded
    ``unavailable: <why>``, a required one raises ``ContextError``."""
    digests = {}
    for need in needs:
        try:
            digests[need.label] = context.digest(need)
        except ContextError as exc:
            if not need.optional:
                raise
            digests[need.label] = f"unavailable: {exc}"
    return digests


def create_adversaries(suite: Suite, context: RunContext, reporter: Reporter) -> tuple[dict[str, Any], list[AdversaryInfo]]:
    """Configured adversaries and their descriptions. An adaptive adversary's needs (the owner's own people)
    are resolved here so that they enter its evaluation keys; one that cannot be met fails that adversary's
    cells at run time with the reason (its key records it)."""
    adversaries, infos = {}, []
    for aname in expand(suite.adversaries, ADVERSARIES):
        adversary = ADVERSARIES.create(aname, **suite.adversary_overrides.get(aname, {}))
        adversaries[aname] = adversary
        try:
            needs = resolve_needs(adversary.needs(), context)
        except ContextError as exc:
            needs = {"unmet": str(exc)}
            reporter.message(f"[red]adversary {aname} cannot run[/red]: {exc}")
        infos.append(AdversaryInfo(aname, asdict(adversary.config), code_version(adversary), adversary.kind, needs))
    return adversaries, infos


__all__ = ["expand", "validate_names", "load_targets", "surrogate_twins", "surrogate_ids", "describe_targets",
           "create_methods", "create_adversaries", "resolve_needs"]
