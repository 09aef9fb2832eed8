"""The leaderboard of a run store: a dict written as leaderboard.json (the source of every other view), plus its
CSV and Markdown tables (laid out in ``bench.report.tables``); ``bench.report.publish`` writes the published copy.

One entry per method and scenario. Every PSR measure ``bench.measures.registry.METRICS`` declares, per target and
adversary (top-1 and top-5, with 95% bootstrap intervals over users; verification PSR when the target is
calibrated), the worst case of the headline measure over every target x adversary cell (the primary score: a
protection is as good as the recogniser that beats it), and every per-user measure the registry declares (image
quality on the face box, budget, cost, counts), aggregated over users as declared there. Each entry keeps its
per-user headline PSR per cell (``per_user_top1``), from which ``bench.measures.ranking`` gives the primary score's
interval and ranks with ties (methods no paired bootstrap over the same users tells apart share a rank). Results
are generated, never edited by hand. An entry's scores are computed by ``bench.report.entry_scores``; runs of one
protocol are merged by ``bench.report.board_merge``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from bench.measures.ranking import rank_entries, stability
from bench.measures.registry import METRICS
from bench.registry import METHODS, UnknownNameError
from bench.report.board_merge import merge
from bench.report.entry_scores import (
    NOT_COMPUTED,
    aggregate,
    mark_incomplete,
    mean_or_none,
    metric_values,
    result_frame,
    scenario_entry,
)
from bench.report.machine_paths import without_machine_paths
from bench.report.submissions import is_submitted
from bench.report.tables import PRIMARY_SCORE, counts, measures, to_csv, to_markdown
from bench.report.threat_profile import adaptation_seconds, robustness_fields
from bench.run.store import RunStore

# Suite fields that must agree for runs to share one leaderboard (with the users, data, surrogates, targets and
# adversaries): the same people, gallery and split, judged by the same recognisers.
PROTOCOL_FIELDS = ("dataset", "gallery_identities", "min_user_photos", "min_gallery_photos", "split", "seeds",
                   "quantize", "protocol", "space", "photo_jpeg_quality")
# What runs made before a suite field existed were: the default it got (photo_jpeg_quality only acts in photo space)
SUITE_DEFAULTS = {"protocol": "templates", "space": "crop", "photo_jpeg_quality": 90}

def paper_facts(method: str) -> dict[str, Any]:
    """The method's reference and the numbers its paper reports on LFW, as its class declares them."""
    try:
        cls = METHODS.entry(method).cls
    except UnknownNameError:
        return {}
    return {"reference": getattr(cls, "reference", None),
            "reported": [asdict(r) for r in getattr(cls, "reported", ())]}


def build(store: RunStore) -> dict[str, Any]:
    plan = store.get_meta("plan")
    if plan is None:
        raise ValueError(f"{store.run_dir} holds no finished plan yet; run `bench run --out {store.run_dir}`")
    env = store.get_meta("environment", {})
    suite = {**SUITE_DEFAULTS, **store.get_meta("suite", {})}
    if suite["space"] == "crop":  # the JPEG quality only acts in photo space: crop runs merge whatever it says
        suite["photo_jpeg_quality"] = None
    targets = [t for t, v in plan["targets"].items() if "unavailable" not in v]
    entries = []
    for mname, m in plan["methods"].items():
        entry: dict[str, Any] = {
            "method": mname, "kind": m.get("kind"), "scenario": "probe", "status": "ok", "reason": None,
            "budget": m.get("budget"), "config": m.get("config"), "overrides": m.get("overrides") or {},
            "psr": {}, "device": plan.get("device"),
            "seeds": [int(s) for s in m.get("protect", {})],
            "protocol": suite["protocol"], "space": suite["space"], **paper_facts(mname),
        }
        if m.get("status") == "unavailable":
            entry.update(status="unavailable", reason=m.get("reason"))
            entries.append(entry)
            continue
        protect_keys = [k for per_seed in m["protect"].values() for k in per_seed.values()]
        records = [store.task(k) for k in protect_keys]
        failed = [t for t in records if t is not None and t["status"] != "done"]
        missing = sum(t is None for t in records)
        if failed:
            errors = sorted({t.get("error") or "" for t in failed})
            entry.update(status="failed", reason=f"{len(failed)} protect task(s) failed: {'; '.join(errors)[:500]}")
        elif missing:
            entry.update(status="incomplete", reason=f"{missing} of {len(records)} protect tasks have not run yet; "
                                                     "rerun the same command to resume")
        # photo space: whole-photo quality comes from the tasks that made the posted photos
        photo_keys = [k for per_seed in m.get("photos", {}).values() for k in per_seed.values()]
        prow = result_frame(store.rows(protect_keys + photo_keys))
        entry.update({m.entry: aggregate(metric_values(prow, m.row), m) for m in measures()})
        entry["users"] = int(prow["user"].nunique(dropna=False))
        entry.update({m.entry: aggregate(metric_values(prow, m.row), m) for m in counts()})
        # What each fit chose (Chameleon's team and diversity, TIP-IM's targets ...), per user (and seed).
        seeds = m["protect"]
        infos = {(user if len(seeds) == 1 else f"{user}/seed{seed}"): store.task(key)["info"].get("info", {})
                 for seed, per_user in seeds.items() for user, key in per_user.items() if store.is_done(key)}
        if any(infos.values()):
            entry["protector_info"] = infos
        # rows of every seed per (adversary, target) cell; None when a task of the cell failed (a failed seed
        # fails the cell)
        eval_keys: dict[tuple[str, str], list[str] | None] = {}
        for per_seed in m["eval"].values():
            for aname, per_target in per_seed.items():
                for tname, key in per_target.items():
                    if eval_keys.get((aname, tname), []) is None:
                        continue
                    if store.is_done(key):
                        eval_keys.setdefault((aname, tname), []).append(key)
                    else:
                        eval_keys[(aname, tname)] = None
                        entry.setdefault("failed_cells", {})[f"{tname}|{aname}"] = \
                            (store.task(key) or {}).get("error") or NOT_COMPUTED
        mark_incomplete(entry, len(eval_keys))
        # rows key by key, in seed order (one query for several keys returns them in the index's order)
        eval_rows = {cell: None if keys is None else result_frame([r for k in keys for r in store.rows([k])])
                     for cell, keys in eval_keys.items()}
        # key-holder accuracy: its own tasks, one per target and seed (methods whose mask is a key)
        authorized: dict[str, list[float]] = {}
        for per_seed in m.get("authorized", {}).values():
            for tname, key in per_seed.items():
                if store.is_done(key):
                    authorized.setdefault(tname, []).extend(
                        metric_values(result_frame(store.rows([key])), "authorized_top1_accuracy").tolist())
        for scenario in plan.get("scenarios", ["probe"]):
            scored = scenario_entry(dict(entry, scenario=scenario, psr={}), eval_rows, scenario)
            # the key holder un-masks the user's published (query) photos: a probe-scenario measure
            scored["authorized_accuracy"] = ({t: mean_or_none(pd.Series(v, dtype=float)) for t, v in
                                              authorized.items() if v} or None) if scenario == "probe" else None
            scored.update(robustness_fields(scored["psr"], plan.get("adversary_kinds", {}), m.get("unseen_targets", []),
                                            METRICS.headline().name),
                          surrogates=m.get("surrogates"), adapt_s=adaptation_seconds(eval_rows) or None)
            entries.append(scored)
    clean = {}
    for tname, key in plan.get("clean_eval", {}).items():
        if store.is_done(key):
            all_rows = result_frame(store.rows([key]))
            rows = all_rows[all_rows["scenario"] == "probe"]
            clean[tname] = {f"{p.name}_accuracy": 1 - mean_or_none(metric_values(rows, p.row)) for p in METRICS.psr()
                            if p.clean_accuracy}
            if (rows["metric"] == "missed").any():  # photo space: clean photos the attacker found no face in
                clean[tname]["missed"] = int(metric_values(rows, "missed").sum())
            for scenario in sorted(set(all_rows["scenario"]) - {"probe"}):  # linkage: the clean photos' rate
                linked = all_rows[all_rows["scenario"] == scenario]
                clean[tname][f"{scenario}_top1_rate"] = 1 - mean_or_none(metric_values(linked, "psr_top1"))
    for e in entries:  # a linkage entry carries its baseline: the clean photos' PSR-linkage per target
        rates = {t: 1 - v[f"{e['scenario']}_top1_rate"] for t, v in clean.items() if f"{e['scenario']}_top1_rate" in v}
        if rates:
            e["clean_psr_top1"] = rates
    entries.sort(key=lambda e: (e["status"] != "ok", -(e.get(PRIMARY_SCORE) or -1)))
    rank_entries(entries)
    return {
        "run": {"suite": suite.get("name"), "created": env.get("created"), "environment": env,
                "primary_score": PRIMARY_SCORE, "data": plan.get("data"), "surrogates": plan.get("surrogates"),
                "users": plan.get("users"), "protocol": {f: suite.get(f) for f in PROTOCOL_FIELDS},
                "source": str(store.run_dir), "invocations": store.get_meta("invocations", [])},
        "targets": targets,
        "target_info": plan["targets"],
        "adversaries": plan["adversaries"],
        "entries": entries,
        "clean": clean,
        "stability": stability(entries),
    }


def published_board(folder: str | Path) -> dict[str, Any]:
    """A published folder's leaderboard, as its runs made it (submitted entries are merged in again on publish)."""
    board = json.loads((Path(folder) / FILES["json"][0]).read_text())
    return {**board, "entries": [e for e in board["entries"] if not is_submitted(e)]}


def build_runs(run_dirs: list[str | Path]) -> dict[str, Any]:
    """The leaderboard of one run, or of several runs of the same protocol merged (``merge``). A folder with a
    leaderboard.json and no store (a published folder) gives the board it holds: its views are regenerated, and
    with further runs it grows by their methods (a long table measured in parts, each part published)."""
    boards = []
    for run_dir in run_dirs:
        if not (Path(run_dir) / "store.sqlite").exists() and (Path(run_dir) / FILES["json"][0]).is_file():
            boards.append(published_board(run_dir))
            continue
        store = RunStore.open_existing(run_dir)
        try:
            boards.append(build(store))
        finally:
            store.close()
    if len(boards) == 1:
        return boards[0]
    # compared as published: a run folder here and a board published from another machine name the data alike
    return merge([without_machine_paths(b) for b in boards])


def to_json(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, default=str) + "\n"


FILES = {"json": ("leaderboard.json", to_json), "csv": ("leaderboard.csv", to_csv),
         "md": ("leaderboard.md", to_markdown)}


def write_board(board: dict[str, Any], run_dir: str | Path, formats: tuple[str, ...] = ("json", "csv", "md")
                ) -> dict[str, Path]:
    """Write a run's leaderboard files. leaderboard.json, the source every other view (and the HTML report)
    reads, is always written."""
    unknown = [f for f in formats if f not in FILES]
    if unknown:
        raise ValueError(f"unknown leaderboard format(s) {', '.join(unknown)} (known: {', '.join(FILES)})")
    out = {}
    for fmt in dict.fromkeys(("json", *formats)):
        name, render = FILES[fmt]
        out[fmt] = Path(run_dir) / name
        out[fmt].write_text(render(board))
    return out


def write(run_dir: str | Path, formats: tuple[str, ...] = ("json", "csv", "md")) -> dict[str, Path]:
    """Build the leaderboard of one run folder from its store and write its files (``write_board``)."""
    return write_board(build_runs([run_dir]), run_dir, formats)
