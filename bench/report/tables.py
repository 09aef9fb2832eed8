"""The leaderboard's tables: a board (``leaderboard.json``'s contents) as one flat row per entry, CSV and Markdown.

The PSR columns follow the registry's headline PSR measure (``METRICS.headline()``, top-1): its worst case (the
primary score), mean, robustness summaries and one column per target x adversary. Columns after the PSR summary
come from ``bench.measures.registry.METRICS`` too: every measure (quality, budget, cost) in declaration order, then
the run facts (device, users, the count metrics). A metric registered there shows up here, in the report and in
``bench check`` with no other edit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.measures.registry import METRICS, SCENARIO_PSR, Metric
from bench.report.findings import reading
from bench.report.formatting import cell_status, number, percent, with_interval
from bench.report.threat_profile import worst_of

HEADLINE = METRICS.headline()
PRIMARY_SCORE = HEADLINE.worst_field
PROTOCOL_TEXT = {
    "templates": "probe queries ranked against one template per gallery identity (the mean of its clean photos)",
    "opom-pairs": "OPOM's protocol: each probe query ranked against ONE clean photo of the user plus every other "
                  "gallery photo as a distractor, over all query/photo pairs",
}
# Robustness summaries of an entry (bench.report.threat_profile): column -> Markdown header. The Markdown shows one only
# when some entry has it (a run with no adaptive adversary has no "worst adaptive").
ROBUSTNESS = {f"psr_{HEADLINE.name}_{key}": f"{HEADLINE.label} {text}" for key, text in
              (("no_adversary", "no adversary"), ("worst_adaptive", "worst adaptive"), ("worst_unseen", "worst unseen"))}


SPACE_TEXT = {
    "crop": "the recogniser is given the aligned face canvas the method made",
    "photo": "each protected face is put back into its photo, saved as JPEG at quality {q} and re-detected and "
             "re-aligned by the target's own detector (docs/photos.md); a photo where that detector finds no face "
             "counts as protected and is counted as missed",
}


def measures(board: dict[str, Any] | None = None) -> list[Metric]:
    """The metrics a view shows as results of a method (not counts of what was measured); given a board,
    whole-photo metrics only where some entry has them (photo-space runs)."""
    return [m for m in METRICS.all() if m.group != "count" and (
        board is None or m.region != "photo" or any(e.get(m.entry) is not None for e in board["entries"]))]


def missed_cells(board: dict[str, Any]) -> list[tuple[str, str]]:
    """The (target, adversary) cells where some entry counted photos the attacker's detector missed."""
    return [(t, a) for t in board["targets"] for a in board["adversaries"]
            if any("missed" in e.get("psr", {}).get(t, {}).get(a, {}) for e in board["entries"])]


def counts() -> list[Metric]:
    return [m for m in METRICS.all() if m.group == "count"]


def mean_authorized(entry: dict[str, Any]) -> float | None:
    """Key-holder top-1 accuracy, mean over the targets that measured it."""
    known = [v for v in (entry.get("authorized_accuracy") or {}).values() if v is not None]
    return sum(known) / len(known) if known else None


def flat_frame(board: dict[str, Any]) -> pd.DataFrame:
    """One row per entry: fixed columns, PSR top-1 per target|adversary, the worst cell of every other declared
    PSR measure (PSR@5, verification), key-holder accuracy, the reason."""
    ci = HEADLINE.ci_field
    fixed = ["method", "kind", "scenario", "status", PRIMARY_SCORE, HEADLINE.mean_field, *ROBUSTNESS,
             *(m.entry for m in measures(board)), "device", "users", *(m.entry for m in counts()), "rank",
             f"{ci}_low", f"{ci}_high", "protocol", "space"]
    missed = missed_cells(board)
    others = [m for m in METRICS.psr() if not m.headline and any(worst_of(e, m.name) is not None for e in board["entries"])]
    rows = []
    for e in board["entries"]:
        row = {k: e.get(k) for k in fixed}
        row[f"{ci}_low"], row[f"{ci}_high"] = e.get(ci) or (None, None)
        for t in board["targets"]:
            for a in board["adversaries"]:
                cell = e.get("psr", {}).get(t, {}).get(a, {})
                column, name = f"{HEADLINE.row}[{t}|{a}]", HEADLINE.name
                row[column] = cell.get(name)
                row[f"{column}_ci_low"], row[f"{column}_ci_high"] = cell.get(f"{name}_ci") or (None, None)
        row.update({f"psr_{m.name}_worst": worst_of(e, m.name) for m in others})  # PSR@5, verification ...
        row.update({f"missed[{t}|{a}]": e.get("psr", {}).get(t, {}).get(a, {}).get("missed") for t, a in missed})
        baseline = e.get("clean_psr_top1") or {}  # linkage entries: the clean photos' PSR-linkage
        row.update({f"clean_psr_top1[{t}]": baseline[t] for t in board["targets"] if baseline.get(t) is not None})
        auth = e.get("authorized_accuracy") or {}
        row.update({f"authorized_top1[{t}]": auth[t] for t in board["targets"] if auth.get(t) is not None})
        row["failed_cells"] = "; ".join(e.get("failed_cells") or {}) or None  # cells the worst case leaves out
        row["reason"] = e.get("reason")
        rows.append(row)
    # object columns keep each value as the JSON has it (an int stays an int next to a missing one)
    return pd.DataFrame(rows, dtype=object)


def to_csv(board: dict[str, Any]) -> str:
    return flat_frame(board).to_csv(index=False, lineterminator="\n", na_rep="")


def white_box_text(board: dict[str, Any]) -> str:
    """E.g. "sface, dlib-resnet, sface-cv2 (sface's weights)"."""
    names = [t + (f" ({', '.join(v['same_weights_as'])}'s weights)" if v.get("same_weights_as") else "")
             for t, v in board.get("target_info", {}).items() if v.get("white_box")]
    return ", ".join(names) or "none"


def _robustness_shown(board: dict[str, Any]) -> list[str]:
    return [k for k in ROBUSTNESS if any(e.get(k) is not None for e in board["entries"])]


def worst_text(e: dict[str, Any], cells: int) -> str:
    """The worst case, said to be over part of the cells when some failed or were not computed."""
    missing = len(e.get("failed_cells") or {})
    return f" (incomplete: {cells - missing} of {cells} cells)" if missing else ""


def cell_text(cell: dict[str, Any]) -> str:
    return cell_status(cell) or percent(cell.get(HEADLINE.name))


def _display_row(e: dict[str, Any], targets: list[str], advs: list[str], robustness: list[str],
                 shown: list[Metric]) -> list[str]:
    changed = ("†" if e.get("overrides") else "") + ("‡" if e.get("origin") == "submitted" else "")
    interval = e.get(HEADLINE.ci_field)
    worst = with_interval(e.get(PRIMARY_SCORE), interval)
    worst += worst_text(e, len(targets) * len(advs))
    cells = [str(e.get("rank", "not ranked" if e.get("unranked") else "")), e["method"] + changed + ("" if e["status"] == "ok" else f" ({e['status']})"),
             e.get("kind") or "", e["scenario"], worst, *(percent(e.get(k)) for k in robustness)]
    for t in targets:
        per = e.get("psr", {}).get(t, {})
        cells.append(" / ".join(cell_text(per.get(a, {})) for a in advs))
    cells += [number(e.get(m.entry), m.fmt) for m in shown]
    cells.append(percent(mean_authorized(e)))
    return cells


def display_frame(board: dict[str, Any]) -> pd.DataFrame:
    """The Markdown table as text cells: PSR in %, every measure in its metric's format."""
    targets, advs, robustness, shown = board["targets"], board["adversaries"], _robustness_shown(board), measures(board)
    head = ["rank", "method", "kind", "scenario", f"{HEADLINE.label} worst [95% CI]", *(ROBUSTNESS[k] for k in robustness),
            *(f"{t} ({'/'.join(advs)})" for t in targets), *(m.label for m in shown), "key-holder top-1"]
    rows = [_display_row(e, targets, advs, robustness, shown) for e in board["entries"] if e["status"] != "unavailable"]
    return pd.DataFrame(rows, columns=head, dtype=object)


def _notes(board: dict[str, Any]) -> list[str]:
    scenarios = sorted({e.get("scenario") for e in board["entries"]})
    notes = [
        f"PSR@1 in % ({', '.join(scenarios)} scenario): "
        + "; ".join(f"{s} = {text}" for s, text in SCENARIO_PSR.items() if s in scenarios or s in ("probe", "gallery"))
        + "; "
        f"sorted by the worst case over targets x adversaries, with its 95% bootstrap interval over users. Rank: "
        f"1 + the methods a paired bootstrap over the same users finds significantly better; methods it cannot "
        f"tell apart share a rank. White-box targets (surrogates, or running a surrogate's weights): "
        f"{white_box_text(board)}.",
        *(["Worst adaptive: over the adversaries that exploit the protection (mask estimation) or train against "
           "the public tool (purification, fine-tuning); worst unseen: over the targets no surrogate was."]
          if _robustness_shown(board) else []),
        "Key-holder top-1: rank-1 accuracy after the key holder removes the mask (methods whose mask is "
        "a key), mean over targets; compare with clean accuracy.",
    ]
    protocols = sorted({e.get("protocol", "templates") for e in board["entries"]})
    notes.append("Protocol: " + "; ".join(f"{p}: {PROTOCOL_TEXT.get(p, p)}" for p in protocols) + ".")
    quality = (board["run"].get("protocol") or {}).get("photo_jpeg_quality") or 90
    spaces = sorted({e.get("space", "crop") for e in board["entries"]})
    notes.append("Space: " + "; ".join(f"{s}: {SPACE_TEXT.get(s, s).format(q=quality)}" for s in spaces) + ".")
    missed = [f"{t}|{a} " + ", ".join(f"{e['method']} {e['psr'][t][a]['missed']}" for e in board["entries"]
                                      if "missed" in e.get("psr", {}).get(t, {}).get(a, {}))
              for t, a in missed_cells(board)]
    if missed:
        notes.append("Missed (photos the attacker's detector found no face in, all users; counted as protected): "
                     + "; ".join(missed) + ".")
    notes += dict.fromkeys(f"Reported for {e['method']} by its paper ({r['source']}): {r['metric']} "
                           f"{percent(r['value'])} on {r['target']} ({r['setting']})."
                           for e in board["entries"] for r in e.get("reported") or [])
    notes += stability_notes(board)
    notes += [f"Not ranked: {e['method']} ({e['scenario']}), {e['unranked']}." for e in board["entries"]
              if e.get("unranked")]
    notes += [f"‡ {e['method']}: submitted by {e['submission']['author']} ({e['submission']['paper']}; code "
              f"{e['submission']['code']}; {e['submission']['hardware']}), ranked on its per-user evidence."
              for e in board["entries"] if e.get("origin") == "submitted"]
    changed = {e["method"]: e["overrides"] for e in board["entries"] if e.get("overrides")}
    for method, overrides in changed.items():
        notes.append(f"† {method}: config changed from its registered defaults: "
                     + ", ".join(f"{k}={v}" for k, v in overrides.items()) + ".")
    if board.get("clean"):
        notes.append("Clean photos, rank-1 accuracy: " + ", ".join(
            f"{t} {percent(v[f'{HEADLINE.name}_accuracy'])}" + (f" ({v['missed']} missed)" if "missed" in v else "")
            for t, v in board["clean"].items()) + ".")
        linked = [f"{k[: -len('_top1_rate')]} on {t} {percent(v[k])}" for t, v in board["clean"].items()
                  for k in v if k.endswith("_top1_rate")]
        if linked:
            notes.append("Clean photos, linkage rate (the nearest other photo is the user's; PSR-linkage's baseline "
                         "is 100% minus it): " + ", ".join(linked) + ".")
    unavailable = {t: v["unavailable"] for t, v in board.get("target_info", {}).items() if "unavailable" in v}
    notes += [f"Target {t}: unavailable ({why})." for t, why in unavailable.items()]
    return notes


def _rho(value: float) -> str:
    # Spearman's rho has no value when a half scores every method alike (a constant order)
    return f"{value:.2f}" if value == value else "undefined (a half scores every method alike)"


def stability_notes(board: dict[str, Any]) -> list[str]:
    """The split-half check (``bench.measures.ranking.stability``) in words."""
    check = board.get("stability")
    if not check:
        return []
    if check.get("left_out"):
        return [f"Split-half check ({check['scenario']} scenario) left out: {check['left_out']}."]
    parts = [f"{label} {_rho(check[key]['rank_correlation'])}" for key, label in
             (("all", "over every target"), ("unseen", "over unseen targets only")) if check.get(key)]
    return [f"Split-half check: the {check['methods']} methods ranked on two disjoint halves of the {check['users']} "
            f"users ({check['scenario']} scenario); Spearman's rank correlation of the halves: " + ", ".join(parts)
            + ". Near 1 the order holds on new people; low, it says as much about who was drawn as about the methods."]


def to_markdown(board: dict[str, Any]) -> str:
    table = display_frame(board)
    head = list(table.columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shown = iter(table.itertuples(index=False))
    for e in board["entries"]:  # in board order; an unavailable entry is one cell with its reason
        if e["status"] == "unavailable":
            lines.append(f"| | {e['method']} | {e.get('kind') or ''} | {e['scenario']} | unavailable: {e.get('reason')} |"
                         + " |" * (len(head) - 5))
        else:
            lines.append("| " + " | ".join(next(shown)) + " |")
    read = reading(board)
    return "\n".join(lines + ["", *_notes(board), *(["", "Reading, generated from the numbers above:", "", *read] if read
                                                     else [])]) + "\n"
