"""Robustness fields of a leaderboard entry, from the kinds of adversary a run recorded in its plan.

Per method: PSR@1 with no adversary (worst over targets), the worst case over every adversary, over the
*adaptive* ones (``ADAPTIVE_KINDS``: those that exploit what the protection is, mask estimation, or train against
the public tool, purification and robust fine-tuning; input transforms are generic), over the targets no
surrogate was (``unseen_targets``, the oblivious recogniser), and each adversary's column (worst over targets).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

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
