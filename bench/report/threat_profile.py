"""Robustness fields of a leaderboard entry, from the kinds of adversary a run recorded in its plan.

Per method: PSR@1 with no adversary (worst over targets), the worst case over every adversary, over the
*adaptive* ones (``ADAPTIVE_KINDS``: those that exploit what the protection is, mask estimation, or train against
the public tool, purification and robust fine-tuning; input transforms are generic), over the targets no
surrogate was (``unseen_targets``, the oblivious recogniser), and each adversary's column (worst over targets).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.measures.ranking import score_interval, user_matrix

ADAPTIVE_KINDS = ("estimation", "adaptation")


def robustness_fields(psr: dict[str, dict[str, dict]], kinds: dict[str, str], unseen_targets: list[str],
                      metric: str) -> dict[str, Any]:
    """``psr``: target -> adversary -> cell (``cell[metric]`` a PSR in [0, 1], ``metric`` a declared PSR measure's
    name); ``kinds``: adversary -> kind."""
    cells = [(t, a, cell[metric]) for t, per in psr.items() for a, cell in per.items()
             if isinstance(cell, dict) and cell.get(metric) is not None]

    def worst(keep) -> float | None:
        values = [v for t, a, v in cells if keep(t, a)]
        return min(values) if values else None

    return {
        f"psr_{metric}_no_adversary": worst(lambda t, a: a == "none"),
        f"psr_{metric}_worst_adaptive": worst(lambda t, a: kinds.get(a) in ADAPTIVE_KINDS),
        f"psr_{metric}_worst_unseen": worst(lambda t, a: t in unseen_targets),
        f"psr_{metric}_by_adversary": {a: worst(lambda t, b, a=a: b == a) for a in dict.fromkeys(a for _, a, _ in cells)},
        "adversary_kinds": {a: kinds.get(a) for a in dict.fromkeys(a for _, a, _ in cells)},
        "unseen_targets": list(unseen_targets),
    }


def adaptation_seconds(eval_rows: dict[tuple[str, str], pd.DataFrame | None]) -> dict[str, float]:
    """``target|adversary`` -> seconds the adversary's adaptation took to build (the ``adapt_s`` rows of each
    cell's result table)."""
    out = {}
    for (adversary, target), frame in eval_rows.items():
        if frame is None:
            continue
        values = frame.loc[frame["metric"] == "adapt_s", "value"]
        if not values.empty:
            out[f"{target}|{adversary}"] = float(values.max())
    return out


# The scores a view can rank or plot by: key -> (label, which target|adversary cells count, the stored field of
# the headline measure holding it). "worst" is the primary score.
SCORES = {
    "worst": ("worst case, every target x adversary", lambda t, a, kind, unseen: True, ""),
    "no_adversary": ("no adversary (oblivious recogniser)", lambda t, a, kind, unseen: a == "none", "no_adversary"),
    "unseen": ("unseen targets (never a surrogate)", lambda t, a, kind, unseen: t in unseen, "worst_unseen"),
    "adaptive": ("worst adaptive adversary", lambda t, a, kind, unseen: kind in ADAPTIVE_KINDS, "worst_adaptive"),
}


def threat_profile(entry: dict[str, Any], name: str) -> dict[str, float | None]:
    """A method's PSR (measure ``name``, worst over targets) against each threat model: an oblivious recogniser
    (no adversary), input transforms (JPEG, blur, purifiers' generic kin: adversaries of kind ``transform``), and
    adaptive adversaries (``ADAPTIVE_KINDS``); methods tied at the worst case can differ here."""
    by_adversary = entry.get(f"psr_{name}_by_adversary") or {}
    kinds = entry.get("adversary_kinds") or {}

    def worst(keep) -> float | None:
        values = [v for a, v in by_adversary.items() if v is not None and keep(a)]
        return min(values) if values else None

    return {"oblivious": worst(lambda a: a == "none"),
            "transforms": worst(lambda a: a != "none" and kinds.get(a) == "transform"),
            "adaptive": worst(lambda a: kinds.get(a) in ADAPTIVE_KINDS)}


def worst_of(entry: dict[str, Any], name: str) -> float | None:
    """The worst cell of PSR measure ``name`` (e.g. PSR@5, verification PSR), None where no cell has it."""
    values = [cell[name] for per in (entry.get("psr") or {}).values() for cell in per.values()
              if isinstance(cell, dict) and cell.get(name) is not None]
    return min(values) if values else None


def score_of(entry: dict[str, Any], score: str, name: str) -> tuple[float | None, tuple[float, float] | None]:
    """One of ``SCORES`` for an entry: its value (the stored field of measure ``name``) and its 95% bootstrap
    interval over the entry's users (from its per-user values of the cells the score keeps; None without them)."""
    _, keep, suffix = SCORES[score]
    value = entry.get(f"psr_{name}_{suffix}" if suffix else f"psr_{name}_worst")
    per_user = entry.get(f"per_user_{name}") or {}
    kinds, unseen = entry.get("adversary_kinds") or {}, set(entry.get("unseen_targets") or [])
    cells = sorted(c for c in per_user if keep(*c.split("|", 1), kinds.get(c.split("|", 1)[1]), unseen))
    if value is None or not cells:
        return value, None
    users = sorted({u for c in cells for u in per_user[c]})
    return value, score_interval(user_matrix(per_user, cells, users))
