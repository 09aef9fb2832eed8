"""Generate the leaderboard from a run store: JSON (the source of every other view), CSV, Markdown.

One entry per method and scenario. PSR per target and adversary (top-1 and top-5, with 95% bootstrap intervals
over users; verification PSR when the target is calibrated), the worst case over every target x adversary cell
(the primary score: a protection is as good as the recogniser that beats it), image quality on the face box,
fit seconds per user, protect milliseconds per photo. Results are generated, never edited by hand.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics import summarise
from bench.registry import METHODS, UnknownNameError
from bench.store import RunStore

PRIMARY_SCORE = "psr_top1_worst"
# Suite fields that must agree for runs to share one leaderboard (with the users, data, surrogates, targets and
# adversaries): the same people, gallery and split, judged by the same recognisers.
PROTOCOL_FIELDS = ("dataset", "gallery_identities", "min_user_photos", "min_gallery_photos", "split", "seeds",
                   "quantize", "protocol")
PROTOCOL_TEXT = {
    "templates": "probe queries ranked against one template per gallery identity (the mean of its clean photos)",
    "opom-pairs": "OPOM's protocol: each probe query ranked against ONE clean photo of the user plus every other "
                  "gallery photo as a distractor, over all query/photo pairs",
}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _per_user(rows: list[dict], metric: str) -> list[float]:
    return [r["value"] for r in rows if r["metric"] == metric]


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
    suite = store.get_meta("suite", {})
    targets = [t for t, v in plan["targets"].items() if "unavailable" not in v]
    entries = []
    for mname, m in plan["methods"].items():
        entry: dict[str, Any] = {
            "method": mname, "kind": m.get("kind"), "scenario": "probe", "status": "ok", "reason": None,
            "budget": m.get("budget"), "config": m.get("config"), "overrides": m.get("overrides") or {},
            "psr": {}, "device": plan.get("device"),
            "seeds": [int(s) for s in m.get("protect", {})],
            "protocol": suite.get("protocol", "templates"), **paper_facts(mname),
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
        prow = store.rows(protect_keys)
        entry["ssim"] = _mean(_per_user(prow, "ssim"))
        entry["psnr"] = _mean(_per_user(prow, "psnr"))
        entry["lpips"] = _mean(_per_user(prow, "lpips"))
        entry["linf_max"] = max(_per_user(prow, "linf"), default=None)
        entry["fit_s_per_user"] = _mean(_per_user(prow, "fit_s"))
        entry["protect_ms_per_photo"] = _mean(_per_user(prow, "protect_ms_per_photo"))
        entry["users"] = len({r["user"] for r in prow})
        entry["probes"] = int(sum(_per_user(prow, "probes")))
        # What each fit chose (Chameleon's team and diversity, TIP-IM's targets ...), per user (and seed).
        seeds = m["protect"]
        infos = {(user if len(seeds) == 1 else f"{user}/seed{seed}"): store.task(key)["info"].get("info", {})
                 for seed, per_user in seeds.items() for user, key in per_user.items() if store.is_done(key)}
        if any(infos.values()):
            entry["protector_info"] = infos
        eval_rows: dict[tuple[str, str], list[dict]] = {}
        for per_seed in m["eval"].values():
            for aname, per_target in per_seed.items():
                for tname, key in per_target.items():
                    if eval_rows.get((aname, tname), []) is None:
                        continue  # a failed seed fails the cell
                    if store.is_done(key):
                        eval_rows.setdefault((aname, tname), []).extend(store.rows([key]))
                    else:
                        eval_rows[(aname, tname)] = None
                        entry.setdefault("failed_cells", {})[f"{tname}|{aname}"] = (store.task(key) or {}).get("error")
        for scenario in plan.get("scenarios", ["probe"]):
            entries.append(_scenario_entry(dict(entry, scenario=scenario, psr={}), eval_rows, scenario))
    entries.sort(key=lambda e: (e["status"] != "ok", -(e.get(PRIMARY_SCORE) or -1)))
    clean = {}
    for tname, key in plan.get("clean_eval", {}).items():
        if store.is_done(key):
            rows = store.rows([key])
            clean[tname] = {"top1_accuracy": 1 - _mean(_per_user(rows, "psr_top1")),
                            "top5_accuracy": 1 - _mean(_per_user(rows, "psr_top5"))}
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
    }


def build_runs(run_dirs: list[str | Path]) -> dict[str, Any]:
    """The leaderboard of one run, or of several runs of the same protocol merged (``merge``)."""
    boards = []
    for run_dir in run_dirs:
        store = RunStore.open_existing(run_dir)
        try:
            boards.append(build(store))
        finally:
            store.close()
    return boards[0] if len(boards) == 1 else merge(boards)


def _protocol(board: dict[str, Any]) -> dict[str, Any]:
    run = board["run"]
    return {"data root": (run.get("data") or {}).get("root"), "identities": (run.get("data") or {}).get("identities"),
            "users": run.get("users"), "surrogates": run.get("surrogates"), "targets": board["targets"],
            "adversaries": board["adversaries"], **(run.get("protocol") or {})}


def merge(boards: list[dict[str, Any]]) -> dict[str, Any]:
    """One leaderboard from runs that differ only in their methods (e.g. a slow method run apart).

    Every entry keeps its own run's facts (suite, environment, git revision). Runs must share the protocol
    (``_protocol``): otherwise their scores are not comparable and this raises, naming what differs.
    """
    first = boards[0]
    reference = _protocol(first)
    for board in boards[1:]:
        other = _protocol(board)
        differs = [k for k in reference if reference[k] != other.get(k)]
        if differs:
            raise ValueError(f"runs {first['run']['source']} and {board['run']['source']} differ in "
                             f"{', '.join(differs)}: their scores cannot share a leaderboard")
    entries, seen = [], {}
    for board in boards:
        facts = {k: board["run"].get(k) for k in ("suite", "created", "environment", "source", "invocations")}
        for e in board["entries"]:
            ident = (e["method"], e["scenario"])
            if ident in seen:
                raise ValueError(f"{e['method']} ({e['scenario']}) is in both {seen[ident]} and "
                                 f"{board['run']['source']}; merge runs with distinct methods")
            seen[ident] = board["run"]["source"]
            entries.append({**e, "run": facts})
    entries.sort(key=lambda e: (e["status"] != "ok", -(e.get(PRIMARY_SCORE) or -1)))
    clean: dict[str, Any] = {}
    for board in boards:
        for target, acc in board["clean"].items():
            known = clean.setdefault(target, acc)
            if abs(known["top1_accuracy"] - acc["top1_accuracy"]) > 1e-9:
                raise ValueError(f"clean accuracy on {target} differs between the runs ({known['top1_accuracy']:.4f} "
                                 f"vs {acc['top1_accuracy']:.4f}): they did not judge the same photos the same way")
    run = {**first["run"], "suite": "+".join(dict.fromkeys(b["run"]["suite"] for b in boards)),
           "source": [b["run"]["source"] for b in boards]}
    return {**first, "run": run, "entries": entries, "clean": clean}


def _scenario_entry(entry: dict[str, Any], eval_rows: dict, scenario: str) -> dict[str, Any]:
    """Fill one method's entry for one scenario: PSR cells with intervals, worst case, authorized accuracy."""
    cells, auth = [], defaultdict(list)
    for (aname, tname), rows in eval_rows.items():
        if rows is None:
            entry["psr"].setdefault(tname, {})[aname] = {"status": "failed"}
            continue
        mine = [r for r in rows if r["scenario"] == scenario]
        cell: dict[str, Any] = {}
        for metric in sorted({r["metric"] for r in mine if r["metric"].startswith("psr_")}):
            s = summarise(_per_user(mine, metric))
            name = metric[len("psr_"):]
            cell[name], cell[f"{name}_ci"] = s["mean"], s["ci"]
        entry["psr"].setdefault(tname, {})[aname] = cell
        if "top1" in cell:
            cells.append(cell["top1"])
        if scenario == "probe":
            auth[tname] += _per_user(rows, "authorized_top1_accuracy")
    entry["psr_top1_worst"] = min(cells) if cells else None
    entry["psr_top1_mean"] = _mean(cells)
    entry["authorized_accuracy"] = {t: _mean(v) for t, v in auth.items() if v} or None
    return entry


def flat_rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per entry: fixed columns, then PSR top-1 per target|adversary."""
    rows = []
    for e in board["entries"]:
        row = {k: e.get(k) for k in ("method", "kind", "scenario", "status", PRIMARY_SCORE, "psr_top1_mean",
                                     "ssim", "psnr", "lpips", "fit_s_per_user", "protect_ms_per_photo", "device",
                                     "users", "probes", "protocol")}
        for t in board["targets"]:
            for a in board["adversaries"]:
                row[f"psr_top1[{t}|{a}]"] = e.get("psr", {}).get(t, {}).get(a, {}).get("top1")
        auth = e.get("authorized_accuracy") or {}
        for t in board["targets"]:
            if auth.get(t) is not None:
                row[f"authorized_top1[{t}]"] = auth[t]
        row["reason"] = e.get("reason")
        rows.append(row)
    return rows


def to_csv(board: dict[str, Any]) -> str:
    rows = flat_rows(board)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in cols})
    return buf.getvalue()


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _num(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def white_box_text(board: dict[str, Any]) -> str:
    """E.g. "sface, dlib-resnet, sface-cv2 (sface's weights)"."""
    names = [t + (f" ({', '.join(v['same_weights_as'])}'s weights)" if v.get("same_weights_as") else "")
             for t, v in board.get("target_info", {}).items() if v.get("white_box")]
    return ", ".join(names) or "none"


def to_markdown(board: dict[str, Any]) -> str:
    targets, advs = board["targets"], board["adversaries"]
    scenarios = sorted({e.get("scenario") for e in board["entries"]})
    head = ["method", "kind", "scenario", "PSR@1 worst"]
    head += [f"{t} ({'/'.join(advs)})" for t in targets]
    head += ["SSIM", "PSNR", "LPIPS", "fit s/user", "ms/photo", "key-holder top-1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in board["entries"]:
        if e["status"] == "unavailable":
            lines.append(f"| {e['method']} | {e.get('kind') or ''} | {e['scenario']} | unavailable: {e.get('reason')} |"
                         + " |" * (len(head) - 4))
            continue
        changed = "†" if e.get("overrides") else ""
        cells = [e["method"] + changed + ("" if e["status"] == "ok" else f" ({e['status']})"), e.get("kind") or "",
                 e["scenario"], _pct(e.get(PRIMARY_SCORE))]
        for t in targets:
            per = e.get("psr", {}).get(t, {})
            cells.append(" / ".join(_pct(per.get(a, {}).get("top1")) for a in advs))
        cells += [_num(e.get("ssim"), ".3f"), _num(e.get("psnr"), ".1f"), _num(e.get("lpips"), ".3f"),
                  _num(e.get("fit_s_per_user"), ".2f"), _num(e.get("protect_ms_per_photo"), ".0f"),
                  _pct(_mean([v for v in (e.get("authorized_accuracy") or {}).values() if v is not None]))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        f"PSR@1 in % ({', '.join(scenarios)} scenario): probe = share of protected query photos whose identity is "
        f"not ranked first against a clean gallery; gallery = share of clean queries not matched to the user's "
        f"enrolled protected photos; "
        f"sorted by the worst case over targets x adversaries. White-box targets (surrogates, or running a "
        f"surrogate's weights): {white_box_text(board)}.",
    ]
    protocols = sorted({e.get("protocol", "templates") for e in board["entries"]})
    notes.append("Protocol: " + "; ".join(f"{p}: {PROTOCOL_TEXT.get(p, p)}" for p in protocols) + ".")
    for e in board["entries"]:
        for r in e.get("reported") or []:
            notes.append(f"Reported for {e['method']} by its paper ({r['source']}): {r['metric']} "
                         f"{_pct(r['value'])} on {r['target']} ({r['setting']}).")
    notes.append("Key-holder top-1: rank-1 accuracy after the key holder removes the mask (methods whose mask is "
                 "a key), mean over targets; compare with clean accuracy.")
    changed = {e["method"]: e["overrides"] for e in board["entries"] if e.get("overrides")}
    for method, overrides in changed.items():
        notes.append(f"† {method}: config changed from its registered defaults: "
                     + ", ".join(f"{k}={v}" for k, v in overrides.items()) + ".")
    if board.get("clean"):
        notes.append("Clean photos, rank-1 accuracy: " + ", ".join(
            f"{t} {_pct(v['top1_accuracy'])}" for t, v in board["clean"].items()) + ".")
    unavailable = {t: v["unavailable"] for t, v in board.get("target_info", {}).items() if "unavailable" in v}
    for t, why in unavailable.items():
        notes.append(f"Target {t}: unavailable ({why}).")
    return "\n".join(lines + notes) + "\n"


def write(run_dir: str | Path, formats: tuple[str, ...] = ("json", "csv", "md")) -> dict[str, Path]:
    """Write the leaderboard files of a run. leaderboard.json, the source every other view (and the HTML
    report) reads, is always written."""
    board = build_runs([run_dir])
    run_dir = Path(run_dir)
    out = {"json": run_dir / "leaderboard.json"}
    out["json"].write_text(json.dumps(board, indent=2, default=str) + "\n")
    for fmt in formats:
        if fmt == "csv":
            out[fmt] = run_dir / "leaderboard.csv"
            out[fmt].write_text(to_csv(board))
        elif fmt == "md":
            out[fmt] = run_dir / "leaderboard.md"
            out[fmt].write_text(to_markdown(board))
        elif fmt == "html":
            from bench.report import write_report

            out[fmt] = write_report(run_dir)
        elif fmt != "json":
            raise ValueError(f"unknown leaderboard format '{fmt}' (json, csv, md, html)")
    return out


def publish(run_dirs: str | Path | list[str | Path], dest: str | Path) -> list[Path]:
    """Publish runs as generated data (RobustBench style): leaderboard.{json,csv,md} and one JSON per entry
    (method and scenario) with its numbers, configuration, seeds, code version and environment. Several runs of
    one protocol are merged into one leaderboard (``merge``)."""
    board = build_runs(run_dirs if isinstance(run_dirs, list) else [run_dirs])
    dest = Path(dest)
    entries_dir = dest / "entries"
    entries_dir.mkdir(parents=True, exist_ok=True)
    for old in entries_dir.glob("*.json"):
        old.unlink()  # entries are regenerated whole: a method dropped from the run leaves no stale file
    written = []
    run_facts = {k: board["run"].get(k) for k in ("suite", "created", "environment", "data", "surrogates",
                                                  "invocations")}
    for e in board["entries"]:
        path = entries_dir / f"{e['method']}--{e['scenario']}.json"
        facts = {**run_facts, **e.get("run", {})}  # a merged entry carries its own run's suite and environment
        path.write_text(json.dumps({**e, "run": facts, "targets": board["targets"],
                                    "adversaries": board["adversaries"]}, indent=2, default=str) + "\n")
        written.append(path)
    for name, text in (("leaderboard.json", json.dumps(board, indent=2, default=str) + "\n"),
                       ("leaderboard.csv", to_csv(board)), ("leaderboard.md", to_markdown(board))):
        (dest / name).write_text(text)
        written.append(dest / name)
    return written
