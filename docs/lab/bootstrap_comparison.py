"""Percentile bootstrap (bench.measures.ranking) against scipy.stats.bootstrap (percentile and BCa) on the published
per-user PSR@1: ``python docs/lab/bootstrap_comparison.py [RESAMPLES] [SAMPLES]`` from the repository root
(its output: docs/lab/bootstrap-comparison.md).

1. The interval each gives for every published entry's primary score (the worst cell).
2. Coverage: each entry of results/ taken as a population of users; samples of n users drawn from it; how often
   each method's 95% interval holds the population's value, and how wide it is.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

from bench.measures.ranking import mean_cell, score_interval, user_matrix, worst_cell

warnings.simplefilter("ignore")  # scipy warns on degenerate samples; they show as nan in the table
REPO = Path(__file__).resolve().parents[2]
N_BOOT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
SIMS = int(sys.argv[2]) if len(sys.argv) > 2 else 100


def scipy_interval(m, score, method):
    def stat(x, axis):  # x: (C, [resamples,] U): scipy inserts the resample axis before the users
        v = np.moveaxis(x, 0, -1)  # ([resamples,] U, C)
        return score(v[None])[0] if v.ndim == 2 else score(v)
    if m.shape[0] < 2 or np.all(m == m[0]):
        point = float(score(m[None])[0])
        return point, point
    r = bootstrap((m.T,), stat, axis=-1, vectorized=True, n_resamples=N_BOOT, method=method,
                  random_state=np.random.default_rng(0), confidence_level=0.95)
    lo, hi = r.confidence_interval
    if np.isnan(lo) or np.isnan(hi):
        return float("nan"), float("nan")
    return float(lo), float(hi)


def matrices(board):
    for e in board["entries"]:
        per = e.get("per_user_top1")
        if not per:
            continue
        users = sorted({u for c in per.values() for u in c})
        cells = sorted(per)
        yield f"{e['method']} ({e['scenario']})", user_matrix(per, cells, users)


def _ci(ci):
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def part1():
    print("## 1. Intervals of the primary score (worst cell) on the published boards, PSR@1 in %")
    print("| board | method | users | point | hand-written percentile | scipy percentile | scipy BCa |")
    print("|---|---|---|---|---|---|---|")
    for name in ("results", "results/faithful10", "results/faithful10-pairs"):
        board = json.loads((REPO / name / "leaderboard.json").read_text())
        for method, m in matrices(board):
            point = float(worst_cell(m[None])[0])
            ours = score_interval(m, worst_cell, n_boot=N_BOOT)
            pct = scipy_interval(m, worst_cell, "percentile")
            bca = scipy_interval(m, worst_cell, "BCa")
            print(f"| {name} | {method} | {m.shape[0]} | {100 * point:.1f} | {_ci(ours)} | {_ci(pct)} | {_ci(bca)} |")


def part2(n_users):
    rng = np.random.default_rng(1)
    board = json.loads((REPO / "results" / "leaderboard.json").read_text())
    print(f"\n## 2. Coverage of nominal 95% intervals, samples of {n_users} users drawn from each published entry's "
          f"30 ({SIMS} samples each)")
    print("| method | score | population value | hand-written percentile | scipy percentile | scipy BCa | "
          "mean width (ours / pct / BCa) |")
    print("|---|---|---|---|---|---|---|")
    for method, m in matrices(board):
        for sname, score in (("worst cell", worst_cell), ("mean cell", mean_cell)):
            truth = float(score(m[None])[0])
            hits = {"ours": 0, "pct": 0, "bca": 0}
            widths = {"ours": [], "pct": [], "bca": []}
            for s in range(SIMS):
                sample = m[rng.integers(0, m.shape[0], n_users)]
                for key, ci in (("ours", score_interval(sample, score, n_boot=N_BOOT, seed=s)),
                                ("pct", scipy_interval(sample, score, "percentile")),
                                ("bca", scipy_interval(sample, score, "BCa"))):
                    if np.isnan(ci[0]):
                        continue
                    hits[key] += ci[0] - 1e-12 <= truth <= ci[1] + 1e-12
                    widths[key].append(ci[1] - ci[0])
            cov = {k: f"{100 * hits[k] / SIMS:.0f}%" for k in hits}
            w = " / ".join(f"{100 * np.mean(widths[k]):.1f}" for k in widths)
            print(f"| {method} | {sname} | {100 * truth:.1f} | {cov['ours']} | {cov['pct']} | {cov['bca']} | {w} |")


if __name__ == "__main__":
    part1()
    for n in (10, 30):
        part2(n)
