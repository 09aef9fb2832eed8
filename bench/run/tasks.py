"""Task bodies: plain top-level functions over explicit inputs, run by an executor (``bench.run.executors``).

Each body takes the :class:`Workspace` (the run's prepared data and configured plug-ins) and the task's own
arguments (names, a user, a seed, the keys of the tasks it reads), and returns a :class:`TaskOutput`: facts for
the task record, result rows, and the tensors to keep as its artifact. A body never writes the store: the
executor saves the artifact, then records the rows and the status in one transaction. ``BODIES`` maps the
planner's ``TaskNode.body`` names to them; a body is found by name, so a task pickles as (name, args).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from bench.core.work_log import WorkLog
from bench.data.canvas import face_region, from_uint8, to_uint8
from bench.measures.psr import (
    enrolled_outcomes,
    gallery_thresholds,
    identity_sums,
    identity_templates,
    linkage_outcomes,
    probe_outcome,
    user_outcome,
)
from bench.measures.registry import METRICS, PSR_PREFIX
from bench.run.budget import check_budget
from bench.run.context import AdversaryContext, RunContext
from bench.run.photo_space import (
    AttackerView,
    as_tensor,
    attacker_detector,
    clean_posts,
    photo_tensor,
    publish_user,
    with_missed,
)
from bench.run.prepare import Prepared
from bench.run.store import ResultRow
from methods.base import seeded


@dataclass
class TaskOutput:
    info: dict[str, Any]
    rows: list[ResultRow]
    tensors: dict[str, torch.Tensor] | None = None  # the task's artifact, when it keeps one
    artifact_sha256: str | None = None  # set instead of tensors where a worker wrote the artifact itself


@dataclass
class Workspace:
    """What task bodies run on: the prepared data, the configured plug-ins by name, the run context."""

    data: Prepared
    device: str
    scenarios: tuple[str, ...]
    quantize: bool
    context: RunContext
    methods: dict[str, Any]
    targets: dict[str, Any]
    adversaries: dict[str, Any]
    surrogates: list[Any]
    load_artifact: Callable[[str], dict[str, torch.Tensor]]
    message: Callable[[str], None] = print
    unavailable_metrics: dict[str, str] = field(default_factory=dict)  # quality metric -> why it cannot run
    work: WorkLog = field(default_factory=WorkLog)  # what the bodies computed (recomputations show there)
    protocol: str = "templates"  # how probe queries are scored (bench.measures.psr.probe_outcome)
    space: str = "crop"  # where the recogniser meets protected faces (bench.run.photo_space)
    photo_jpeg_quality: int = 90
    views: dict[str, AttackerView] = field(default_factory=dict)  # attacker detectors by name, made once

    def canvases(self, photos) -> torch.Tensor:
        return from_uint8(self.data.stack(photos)).to(self.device)

    def embed_clean(self, recogniser: Any, photos: list, model: str | None = None) -> torch.Tensor:
        """Clean photos through a recogniser (``model`` names it when it is not the target as loaded, e.g. as an
        adversary adapted it), noted in ``work``; inference mode, as nothing flows back through them."""
        self.work.note("clean-embedded", model or recogniser.name, (self.data.digests[p] for p in photos))
        with torch.inference_mode():
            return recogniser.embed(self.canvases(photos))

    def attacker_view(self, target: str) -> AttackerView:
        """The detector and aligner of an attacker using ``target`` (photo space)."""
        name = attacker_detector(self.targets[target])
        if name not in self.views:
            self.views[name] = AttackerView(name, self.device)
        return self.views[name]

    def method(self, name: str, seed: int) -> Any:
        """The named method, bound to the run context for this seed."""
        return self.methods[name].bind(self.context, seed)

    def adversary_context(self, adversary: str, method: str) -> AdversaryContext:
        """What an adaptive adversary may use against ``method``: what its ``needs()`` declare (never an
        evaluated user's photo), the method under test and its surrogates."""
        return AdversaryContext(run=self.context.for_plugin(self.adversaries[adversary].needs()),
                                method=self.methods[method].bind(self.context), surrogates=list(self.surrogates))


def quality_rows(ws: Workspace, shown: torch.Tensor, clean: torch.Tensor, **tags: Any) -> list[ResultRow]:
    """One row per registered quality metric (``METRICS.quality()``): the mean over photos, on the metric's
    region. A metric that cannot run here (weights or package missing) is reported once and left out."""
    regions = {"face": (face_region(shown), face_region(clean)), "canvas": (shown, clean)}
    return measured_rows(ws, METRICS.quality(), lambda metric: metric.compute(*regions[metric.region]), tags)


def measured_rows(ws: Workspace, metrics: list, values_of: Callable[[Any], torch.Tensor],
                  tags: dict[str, Any]) -> list[ResultRow]:
    """One row per metric, the mean of ``values_of(metric)`` (per photo); a metric that cannot run here is
    reported once and left out."""
    rows = []
    for metric in metrics:
        if metric.row in ws.unavailable_metrics:
            continue
        try:
            with torch.no_grad():
                values = values_of(metric)
        except Exception as exc:  # a quality extra: report why it is missing, keep the run going
            ws.unavailable_metrics[metric.row] = str(exc)
            ws.message(f"[yellow]{metric.label} unavailable[/yellow]: {exc}")
            continue
        if metric.clamp_max is not None:
            values = values.clamp(max=metric.clamp_max)
        rows.append(ResultRow(metric.row, float(values.mean()), **tags))
    return rows


def clean(ws: Workspace, target: str) -> TaskOutput:
    recogniser = ws.targets[target]
    gallery_photos, gallery_labels = ws.data.gallery()
    tensors = {"gallery": ws.embed_clean(recogniser, gallery_photos)}
    for user in ws.data.users:
        tensors[f"probe/{user}"] = ws.embed_clean(recogniser, ws.data.splits[user].probe)
    return TaskOutput({"gallery_labels": gallery_labels, "target": recogniser.name}, [], tensors)


def protect(ws: Workspace, method: str, user: str, seed: int) -> TaskOutput:
    m = ws.method(method, seed)
    split = ws.data.splits[user]
    fit_photos, probes = ws.canvases(split.fit), ws.canvases(split.probe)
    # The user's photos to protect, in one call: a per-image method batches over all of them.
    clean_gallery = ws.canvases(split.gallery) if "gallery" in ws.scenarios else probes[:0]
    # torch's global RNG seeded for this task only (libraries such as torchattacks take no generator)
    with seeded(seed, ws.device):
        t0 = time.perf_counter()
        protector = m.fit(fit_photos, ws.surrogates, seed)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = protector.protect(torch.cat([probes, clean_gallery])).detach()
        protect_ms = 1000 * (time.perf_counter() - t0) / max(1, len(out))
    protected, enrolled = out[: len(probes)], out[len(probes):]
    linf = float((protected - probes).abs().max()) if len(probes) else 0.0
    budget = m.budget().bounds()
    measured = check_budget(m.name, budget, protected, probes, f"{user}'s probe photo")
    published = to_uint8(protected) if ws.quantize else protected
    tensors = {"protected": published}
    if "gallery" in ws.scenarios:
        check_budget(m.name, budget, enrolled, clean_gallery, f"{user}'s gallery photo")
        tensors["protected_gallery"] = to_uint8(enrolled) if ws.quantize else enrolled
    if protector.has_key:
        tensors["deobfuscated"] = to_uint8(protector.deobfuscate(from_uint8(published).to(ws.device)))
    tensors.update({f"state/{k}": v for k, v in protector.state().items()})
    shown = from_uint8(published).to(ws.device) if ws.quantize else protected
    tags = {"method": m.name, "user": user}
    rows = quality_rows(ws, shown, probes, **tags)
    rows += [ResultRow(name, value, **tags) for name, value in (
        ("linf", linf), ("fit_s", fit_s), ("protect_ms_per_photo", protect_ms), ("probes", float(len(probes))))]
    info = {"info": protector.info(), "budget": budget, "kind": m.kind, "budget_measured": measured,
            "context_used": dict(m.context.used)}
    return TaskOutput(info, rows, tensors)


def publish_photos(ws: Workspace, method: str, user: str, protect_key: str, quality: int) -> TaskOutput:
    """Photo space: the user's protected probe photos as posted (JPEG bytes, the artifact) and the quality of
    each whole protected photo against the original (``METRICS.photo_quality()``)."""
    probes = ws.data.splits[user].probe
    protected = ws.load_artifact(protect_key)["protected"]
    posted, pairs = publish_user(probes, ws.data.faces, ws.data.canvases,
                                 protected if protected.dtype == torch.uint8 else to_uint8(protected), quality)

    def values_of(metric):
        return torch.cat([metric.compute(photo_tensor(p.published, ws.device), photo_tensor(p.original, ws.device))
                          .flatten() for p in pairs])

    rows = measured_rows(ws, METRICS.photo_quality(), values_of, {"method": method, "user": user})
    return TaskOutput({"photos": len(posted), "jpeg_quality": quality}, rows,
                      {f"posted/{i}": as_tensor(data) for i, data in enumerate(posted)})


def attacker_crops(ws: Workspace, target: str, user: str, posted: list) -> tuple[torch.Tensor, int]:
    """What the attacker using ``target`` finds of ``user``'s posted probe photos: canvases in [0, 1] on the
    device, and how many photos it missed."""
    boxes = [ws.data.faces[p].box for p in ws.data.splits[user].probe]
    crops, missed = ws.attacker_view(target).crops(posted, boxes)
    return from_uint8(crops).to(ws.device), missed


def photo_outcome(ws: Workspace, user: str, found: torch.Tensor, missed: int, names_from: torch.Tensor,
                  gallery: torch.Tensor, labels: list[str], thresholds: dict[str, float]):
    """A user's probe outcome in photo space: the found faces scored as in crop space, each missed photo counted
    as protected. Where nothing was found, ``names_from`` (the clean probes) gives the measures' names only."""
    outcome = probe_outcome(ws.protocol, user, found if len(found) else names_from, gallery, labels, thresholds)
    return with_missed(outcome, len(found), missed)


def evaluate(ws: Workspace, method: str, adversary: str, target: str, clean_key: str,
             protect_keys: dict[str, str], thresholds: dict[str, float],
             photo_keys: dict[str, str] | None = None) -> TaskOutput:
    """The adversary's view of every user's protected photos against the gallery: per-user PSR rows. In photo
    space (``photo_keys``: the users' posted photos) the adversary acts on what the attacker's detector found."""
    adv, recogniser = ws.adversaries[adversary], ws.targets[target]
    clean_emb = ws.load_artifact(clean_key)
    labels = ws.data.gallery()[1]
    eval_target = adv.adapt(recogniser, ws.adversary_context(adversary, method))
    adapted = adv.info()  # what the adaptation cost, whether it came from the cache
    if eval_target is recogniser:
        gallery_emb = clean_emb["gallery"].to(ws.device)
        clean_probe = {u: clean_emb[f"probe/{u}"].to(ws.device) for u in ws.data.users}
    else:  # an adapted recogniser is another model: it re-embeds everything it sees
        model = f"{target} adapted by {adversary} against {method}"
        gallery_emb = ws.embed_clean(eval_target, ws.data.gallery()[0], model)
        clean_probe = {u: ws.embed_clean(eval_target, ws.data.splits[u].probe, model) for u in ws.data.users}
    sums, names = identity_sums(gallery_emb, labels)
    templates = F.normalize(sums, dim=1)
    rows: list[ResultRow] = []
    if adv.grows_gallery and (photo_keys is not None or ws.protocol != "templates"):
        raise ValueError(f"{adversary} grows a gallery of templates: it scores crop-space runs with "
                         f"protocol=templates (this run: space={ws.space}, protocol={ws.protocol})")

    def add(scenario, user, outcome):
        tags = dict(method=method, scenario=scenario, adversary=adversary, target=target, user=user)
        rows.extend(ResultRow(PSR_PREFIX + m, v, **tags) for m, v in outcome.psr.items())
        rows.append(ResultRow("queries", outcome.queries, **tags))

    # What the adversary makes of each user's photos (one user at a time: an estimating adversary looks at all of
    # a user's photos together), then one embedding pass over everyone's. The probe photos are the posts the
    # linkage scenarios link. The users are those the method protected: all of the run's, or the first N of a
    # costly method (Suite.method_users).
    users = [u for u in ws.data.users if u in protect_keys]
    posted_probes = any(s in ws.scenarios for s in ("probe", *LINKAGE_SCENARIOS))
    parts = [(scenario, user) for user in users for scenario in ("probe", "gallery")
             if scenario in ws.scenarios or (scenario == "probe" and posted_probes)]
    missed: dict[str, int] = {}
    with torch.no_grad():
        if photo_keys is not None:  # photo space: probe scenario only (bench.run.suites.Suite)
            seen = []
            for _, user in parts:
                posted = ws.load_artifact(photo_keys[user])
                crops, missed[user] = attacker_crops(ws, target, user, [posted[f"posted/{i}"]
                                                                        for i in range(len(posted))])
                seen.append(adv.apply(crops) if len(crops) else crops)
        else:
            arts = {user: ws.load_artifact(protect_keys[user]) for user in users}
            seen = [adv.apply(from_uint8(arts[user]["protected" if scenario == "probe" else "protected_gallery"])
                              .to(ws.device)) for scenario, user in parts]
        found = torch.cat(seen) if seen else None
        embedded = eval_target.embed(found) if found is not None and len(found) else torch.zeros(0, 1)
        embedded = embedded.split([len(x) for x in seen]) if seen else []
    emb_of = dict(zip(parts, embedded, strict=True))
    tracked: dict[str, Any] = {}
    if adv.grows_gallery:  # the tracker enrols what it recognises, then every photo meets the grown gallery
        # an uncalibrated target: the tracker sets its threshold on its own gallery's impostor scores
        admit = thresholds or gallery_thresholds(gallery_emb, labels)
        tracked["thresholds"] = {"source": "LFW calibration" if thresholds else "the run's gallery", **admit}
        if "probe" in ws.scenarios:  # everyone's protected posts against the clean gallery, together
            posts = torch.cat([emb_of[("probe", u)] for u in users])
            owners = [u for u in users for _ in range(len(emb_of[("probe", u)]))]
            enrolled, rounds = adv.enrol(sums, posts, admit)
            tracked["probe"] = enrolment_facts(enrolled, rounds, owners, names)
            for user, outcome in enrolled_outcomes(sums, names, posts, owners, enrolled, thresholds).items():
                add("probe", user, outcome)
        for user in users if "gallery" in ws.scenarios else ():  # each user's world: their template
            own = sums.clone()                                             # enrolled from protected photos
            own[names.index(user)] = emb_of[("gallery", user)].sum(0)
            owners = [user] * len(clean_probe[user])
            enrolled, rounds = adv.enrol(own, clean_probe[user], admit)
            tracked.setdefault("gallery", {})[user] = enrolment_facts(enrolled, rounds, owners, names)
            add("gallery", user, enrolled_outcomes(own, names, clean_probe[user], owners, enrolled,
                                                   thresholds)[user])
    else:
        for (scenario, user), emb in emb_of.items():
            if scenario == "probe" and "probe" not in ws.scenarios:
                continue  # posts for the linkage scenarios only
            if scenario == "probe" and user in missed:
                add("probe", user, photo_outcome(ws, user, emb, missed[user], clean_probe[user], gallery_emb,
                                                 labels, thresholds))
                rows.append(ResultRow("missed", missed[user], method=method, scenario="probe", adversary=adversary,
                                      target=target, user=user))
            elif scenario == "probe":
                add("probe", user, probe_outcome(ws.protocol, user, emb, gallery_emb, labels, thresholds))
            else:  # the recogniser enrols the user's protected photos and is queried with clean ones
                swapped = templates.clone()
                swapped[names.index(user)] = F.normalize(emb.sum(0), dim=0)
                add("gallery", user, user_outcome(user, clean_probe[user], swapped, names, thresholds))
    # A tracker that groups photos by user (mask estimation, the dynamic gallery) presumes the very linkage these
    # scenarios measure: they are scored for the adversaries that treat each photo alike.
    if adv.kind != "estimation":
        posts = {u: emb_of[("probe", u)] for u in ws.data.users if ("probe", u) in emb_of}
        for scenario, outcomes in linkage_rows(ws, posts, gallery_emb, labels).items():
            for user, outcome in outcomes.items():
                add(scenario, user, outcome)
    if "adapt_s" in adapted:
        rows.append(ResultRow("adapt_s", adapted["adapt_s"], method=method, adversary=adversary, target=target))
    return TaskOutput({"gallery_identities": len(names), **({"adaptation": adapted} if adapted else {}),
                       **({"dynamic_gallery": tracked} if tracked else {})}, rows)


LINKAGE_SCENARIOS = ("linkage", "linkage-anchored")


def linkage_rows(ws: Workspace, posts: dict[str, torch.Tensor], gallery_emb: torch.Tensor,
                 labels: list[str]) -> dict[str, dict[str, Any]]:
    """Linkage outcomes per scenario the run has: the users' posts linked to each other, and with one clean photo
    of each user (their first gallery photo) held beside them (``bench.measures.psr.linkage_outcomes``)."""
    out = {}
    if "linkage" in ws.scenarios:
        out["linkage"] = linkage_outcomes(posts)
    if "linkage-anchored" in ws.scenarios:
        first = {u: labels.index(u) for u in posts}
        out["linkage-anchored"] = linkage_outcomes(posts, {u: gallery_emb[i : i + 1] for u, i in first.items()})
    return out


def enrolment_facts(enrolled: torch.Tensor, rounds: int, owners: list[str], names: list[str]) -> dict[str, int]:
    """What a dynamic gallery did: rounds run, photos enrolled, and how many joined their own identity."""
    joined = enrolled >= 0
    right = sum(bool(j) and names[int(e)] == o for j, e, o in zip(joined.tolist(), enrolled.tolist(), owners,
                                                                    strict=True))
    return {"rounds": rounds, "posts": len(owners), "enrolled": int(joined.sum()), "enrolled_as_owner": right}


def evaluate_clean(ws: Workspace, target: str, clean_key: str, thresholds: dict[str, float]) -> TaskOutput:
    """The baseline: every user's clean probes against the gallery."""
    clean_emb = ws.load_artifact(clean_key)
    gallery_emb, labels = clean_emb["gallery"].to(ws.device), ws.data.gallery()[1]
    rows: list[ResultRow] = []
    for user in ws.data.users:
        clean_probe = clean_emb[f"probe/{user}"].to(ws.device)
        tags = dict(method="clean", scenario="probe", target=target, user=user)
        if ws.space == "photo":  # the clean photos go the attacker's way too: posted, re-detected, re-aligned
            crops, missed = attacker_crops(ws, target, user, clean_posts(ws.data.splits[user].probe,
                                                                         ws.photo_jpeg_quality))
            with torch.no_grad():
                found = ws.targets[target].embed(crops) if len(crops) else crops
            outcome = photo_outcome(ws, user, found, missed, clean_probe, gallery_emb, labels, thresholds)
            rows.append(ResultRow("missed", missed, **tags))
        else:
            outcome = probe_outcome(ws.protocol, user, clean_probe, gallery_emb, labels, thresholds)
        rows.extend(ResultRow(PSR_PREFIX + m, v, **tags) for m, v in outcome.psr.items())
        rows.append(ResultRow("queries", outcome.queries, **tags))
    # the linkage baseline: the same users' clean photos, linked as their protected posts are
    posts = {u: clean_emb[f"probe/{u}"].to(ws.device) for u in ws.data.users}
    for scenario, outcomes in linkage_rows(ws, posts, gallery_emb, labels).items():
        for user, outcome in outcomes.items():
            tags = dict(method="clean", scenario=scenario, target=target, user=user)
            rows.extend(ResultRow(PSR_PREFIX + m, v, **tags) for m, v in outcome.psr.items())
            rows.append(ResultRow("queries", outcome.queries, **tags))
    return TaskOutput({"gallery_identities": len(set(labels))}, rows)


def key_holder(ws: Workspace, method: str, target: str, clean_key: str, protect_keys: dict[str, str]) -> TaskOutput:
    """Authorized accuracy: rank-1 accuracy of the target on each user's photos after the key holder removed
    the mask (the protected photos as published, de-obfuscated with the user's key)."""
    recogniser = ws.targets[target]
    clean_emb = ws.load_artifact(clean_key)
    templates, names = identity_templates(clean_emb["gallery"].to(ws.device), ws.data.gallery()[1])
    rows = []
    for user in protect_keys:
        art = ws.load_artifact(protect_keys[user])
        if "deobfuscated" not in art:
            raise ValueError(f"{method} declares that its protectors hold a key (Method.holds_key), but the one "
                             f"fitted for {user} kept none (Protector.has_key is False)")
        with torch.no_grad():
            restored = recogniser.embed(from_uint8(art["deobfuscated"]).to(ws.device))
        outcome = user_outcome(user, restored, templates, names, ks=(1,))
        rows.append(ResultRow("authorized_top1_accuracy", 1 - outcome.psr["top1"], method=method, target=target,
                              user=user))
    return TaskOutput({}, rows)


BODIES: dict[str, Callable[..., TaskOutput]] = {
    "clean": clean, "protect": protect, "evaluate": evaluate, "evaluate_clean": evaluate_clean,
    "key_holder": key_holder, "publish_photos": publish_photos,
}
