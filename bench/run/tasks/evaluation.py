"""Evaluation task bodies: the clean embeddings (``clean``), what an adversary makes of the protected photos
(``evaluate``), the clean baseline (``evaluate_clean``) and the key holder's accuracy (``key_holder``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bench.data.canvas import from_uint8
from bench.measures.psr import (
    enrolled_outcomes,
    gallery_thresholds,
    identity_sums,
    identity_templates,
    linkage_outcomes,
    probe_outcome,
    user_outcome,
)
from bench.measures.registry import PSR_PREFIX
from bench.run.photo_space import clean_posts, with_missed
from bench.run.store import ResultRow
from bench.run.workspace import TaskOutput, Workspace


def clean(ws: Workspace, target: str) -> TaskOutput:
    recogniser = ws.targets[target]
    gallery_photos, gallery_labels = ws.data.gallery()
    tensors = {"gallery": ws.embed_clean(recogniser, gallery_photos)}
    for user in ws.data.users:
        tensors[f"probe/{user}"] = ws.embed_clean(recogniser, ws.data.splits[user].probe)
    return TaskOutput({"gallery_labels": gallery_labels, "target": recogniser.name}, [], tensors)


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
