"""Regression check of a run against a stored baseline (for CI): PSR and image quality per method.

The baseline is a reduced copy of a run's ``leaderboard.json``, written only by an explicit
``bench check RUN_DIR --update-baseline FILE``: per method its status, the headline PSR measure
(``METRICS.headline()``, PSR@1) per target x adversary with each user's value and the 95% interval over users,
its worst case, and every metric
``bench.measures.registry.METRICS`` declares a check tolerance for (SSIM, PSNR, LPIPS today).

How far a PSR may move follows from the users' spread, not from a fixed number (``psr_verdict``): where the
baseline and the run hold per-user values of the same users, a change fails when the 95% paired bootstrap
interval of the difference (run minus baseline, over those users) excludes 0, i.e. when more users moved the
same way than chance among them explains; otherwise (a baseline written before per-user values were kept, or
other users) when the run's value leaves the baseline's 95% interval over users. ``--tolerance X`` replaces
both by a fixed absolute tolerance. A failure either way: a better score also means the baseline no longer
describes the code. A method or PSR cell of the baseline that is missing, or a method that was ``ok`` and is
now unavailable or failed, fails too. Methods, cells and values that are new are reported but do not fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.validation import read_json
from bench.measures.ranking import Score, mean_cell, paired_difference, user_matrix, worst_cell
from bench.measures.registry import METRICS
from bench.report.formatting import finer, finite

BASELINE_FORMAT = "cloakbench-baseline/2"
READABLE_FORMATS = ("cloakbench-baseline/1", BASELINE_FORMAT)  # /1: no per-user values
PSR_TOLERANCE = 0.05  # absolute, PSR is a fraction in [0, 1]: only where no interval exists
HEADLINE = METRICS.headline()
# the baseline's keys for the headline: its cells, their intervals, its worst case and that worst case's interval
CELLS, CELL_CIS, WORST, WORST_CI = HEADLINE.row, f"{HEADLINE.row}_ci", HEADLINE.worst_field, HEADLINE.ci_field


def default_tolerances() -> dict[str, float]:
    """Leaderboard field -> absolute tolerance, for every metric the registry declares a tolerance for."""
    return {m.entry: m.tolerance for m in METRICS.checked()}


def value_format(metric: str) -> str:
    """Format spec for a checked value: one decimal finer than the metric's display (PSR: a fraction, 4 places)."""
    known = {m.entry: m.fmt for m in METRICS.all()}
    return finer(known[metric]) if metric in known else ".4f"


@dataclass(frozen=True)
class Finding:
    method: str
    metric: str
    baseline: float | str | None
    now: float | str | None
    tolerance: float | str | None  # a number, or the interval a PSR verdict rested on
    verdict: str  # "fail" | "new" (reported, not a failure)
    note: str = ""

    @property
    def delta(self) -> float | None:
        if isinstance(self.baseline, (int, float)) and isinstance(self.now, (int, float)):
            return float(self.now) - float(self.baseline)
        return None

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"


def _entry_key(entry: dict) -> str:
    method, scenario = str(entry.get("method")), entry.get("scenario")
    return method if scenario in (None, "probe") else f"{method} [{scenario}]"


def reduce_board(board: dict[str, Any]) -> dict[str, Any]:
    """The baseline: what the check compares, from one leaderboard.json."""
    methods = {}
    for entry in board.get("entries") or []:
        if not isinstance(entry, dict) or not entry.get("method"):
            continue
        psr, intervals = {}, {}
        for target, per_adv in (entry.get("psr") or {}).items():
            for adversary, cell in (per_adv or {}).items():
                value = finite(cell.get(HEADLINE.name)) if isinstance(cell, dict) else None
                if value is not None:
                    psr[f"{target}|{adversary}"] = value
                    if cell.get(f"{HEADLINE.name}_ci"):
                        intervals[f"{target}|{adversary}"] = [float(v) for v in cell[f"{HEADLINE.name}_ci"]]
        worst_ci = entry.get(WORST_CI)
        methods[_entry_key(entry)] = {
            "status": entry.get("status", "ok"),
            WORST: finite(entry.get(WORST)),
            WORST_CI: [float(v) for v in worst_ci] if worst_ci else None,
            CELLS: psr,
            CELL_CIS: intervals,
            HEADLINE.per_user_field: entry.get(HEADLINE.per_user_field) or {},
            **{m.entry: finite(entry.get(m.entry)) for m in METRICS.checked()},
        }
    run = board.get("run") or {}
    return {"format": BASELINE_FORMAT, "suite": run.get("suite"), "created": run.get("created"),
            "primary_score": run.get("primary_score"), "users": sorted(run.get("users") or []), "methods": methods}


def load_leaderboard(run_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / "leaderboard.json", f"run `bench leaderboard {run_dir}` first",
                     f"regenerate it with `bench leaderboard {run_dir}`")


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    data = read_json(path, f"create the baseline with `bench check RUN_DIR --update-baseline {path}`")
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS or not isinstance(data.get("methods"),
                                                                                                    dict):
        raise ValueError(f"{path} is not a {BASELINE_FORMAT} baseline; write one with `bench check RUN_DIR "
                         f"--update-baseline {path}`")
    return data


def write_baseline(board: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reduce_board(board), indent=2, sort_keys=True) + "\n")
    return path


def _verdict(method: str, metric: str, base: float, now: float, tolerance: Any, moved: bool,
             higher_is_better: bool | None, note: str = "") -> Finding | None:
    if not moved:
        return None
    delta = now - base
    if higher_is_better is None:
        verdict_note = "changed"
    else:
        verdict_note = "better: update the baseline" if (delta > 0) == higher_is_better else "worse"
    return Finding(method, metric, base, now, tolerance, "fail", verdict_note + (f" ({note})" if note else ""))


def _compare_value(method: str, metric: str, base: float | None, now: float | None, tol: float,
                   higher_is_better: bool | None) -> Finding | None:
    if base is None:
        return None if now is None else Finding(method, metric, None, now, tol, "new", "no baseline value")
    if now is None:
        return Finding(method, metric, base, None, tol, "fail", "missing now")
    return _verdict(method, metric, base, now, tol, abs(now - base) > tol + 1e-12, higher_is_better)


def _paired_users(base: dict[str, dict[str, float]], now: dict[str, dict[str, float]], cells: list[str]
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Users x cells matrices of the baseline and the run over the users both hold in every cell; None if
    fewer than 2 such users (no spread to judge a change by)."""
    if not cells or not all(c in base and c in now for c in cells):
        return None
    users = sorted(set.intersection(*(set(base[c]) & set(now[c]) for c in cells)))
    if len(users) < 2:
        return None
    return user_matrix(now, cells, users), user_matrix(base, cells, users)


def psr_verdict(method: str, metric: str, base: dict, cur: dict, cells: list[str], score: Score,
                base_value: float | None, now_value: float | None, interval: list[float] | None,
                fixed: float | None) -> Finding | None:
    """One PSR (a cell, or the worst over ``cells``) of the run against the baseline; see the module docstring.
    The finding's tolerance says what the verdict rested on."""
    base_value, now_value = finite(base_value), finite(now_value)
    if base_value is None or now_value is None or fixed is not None:
        return _compare_value(method, metric, base_value, now_value, PSR_TOLERANCE if fixed is None else fixed, True)
    per_user = HEADLINE.per_user_field
    paired = _paired_users(base.get(per_user) or {}, cur.get(per_user) or {}, cells)
    if paired is not None:
        diff = paired_difference(*paired, score=score)
        return _verdict(method, metric, base_value, now_value, f"paired 95% CI [{diff.ci[0]:+.3f}, {diff.ci[1]:+.3f}]",
                        diff.significant, True, f"{diff.users} users moved beyond their spread")
    if interval:
        lo, hi = interval
        return _verdict(method, metric, base_value, now_value, f"baseline 95% CI [{lo:.3f}, {hi:.3f}]",
                        not lo - 1e-12 <= now_value <= hi + 1e-12, True, "outside the baseline's interval")
    return _compare_value(method, metric, base_value, now_value, PSR_TOLERANCE, True)


def compare(baseline: dict[str, Any], board: dict[str, Any], psr_tolerance: float | None = None,
            tolerances: dict[str, float] | None = None) -> list[Finding]:
    """Every difference between the baseline and the run that matters (failures and new things).
    ``psr_tolerance`` (a fixed absolute PSR tolerance) replaces the interval rule; ``tolerances`` overrides the
    registry's tolerance of some metrics (leaderboard field -> value)."""
    tolerances = {**default_tolerances(), **(tolerances or {})}
    now = reduce_board(board)
    findings: list[Finding] = []
    if baseline.get("suite") != now.get("suite"):
        findings.append(Finding("-", "suite", baseline.get("suite"), now.get("suite"), None, "fail",
                                "the run is of a different suite than the baseline"))
    if baseline.get("users") and now["users"] and baseline["users"] != now["users"]:
        findings.append(Finding("-", "users", f"{len(baseline['users'])} users", f"{len(now['users'])} users", None,
                                "fail", "the run judged other people than the baseline (another data root?): "
                                "compare runs on the same data"))
    for method, base in baseline["methods"].items():
        cur = now["methods"].get(method)
        if cur is None:
            findings.append(Finding(method, "status", base.get("status"), "missing", None, "fail",
                                    "method missing from the run"))
            continue
        if base.get("status") == "ok" and cur["status"] != "ok":
            findings.append(Finding(method, "status", "ok", cur["status"], None, "fail",
                                    f"newly {cur['status']}"))
            continue
        if base.get("status") != "ok":
            if cur["status"] == "ok":
                findings.append(Finding(method, "status", base.get("status"), "ok", None, "new", "now available"))
            continue
        cells = base.get(CELLS) or {}
        psr = [psr_verdict(method, WORST, base, cur, sorted(cells), worst_cell, base.get(WORST), cur[WORST],
                           base.get(WORST_CI), psr_tolerance)]
        psr += [psr_verdict(method, f"{CELLS}[{cell}]", base, cur, [cell], mean_cell, value, cur[CELLS].get(cell),
                            (base.get(CELL_CIS) or {}).get(cell), psr_tolerance)
                for cell, value in cells.items()]
        findings += [f for f in psr if f is not None]
        for cell, value in cur[CELLS].items():
            if cell not in cells:
                findings.append(Finding(method, f"{CELLS}[{cell}]", None, value, None, "new", "new cell"))
        for m in METRICS.checked():
            finding = _compare_value(method, m.entry, finite(base.get(m.entry)), finite(cur.get(m.entry)),
                                     tolerances[m.entry], m.higher_is_better)
            if finding is not None:
                findings.append(finding)
    for method, cur in now["methods"].items():
        if method not in baseline["methods"]:
            findings.append(Finding(method, "status", None, cur["status"], None, "new", "method not in the baseline"))
    return findings


def parse_tolerances(items: list[str] | None) -> dict[str, float]:
    """``["ssim=0.005", "psnr=1"]`` -> {"ssim": 0.005, "psnr": 1.0}; unknown names or bad numbers raise."""
    out = {}
    for item in items or []:
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name not in default_tolerances():
            raise ValueError(f"unknown checked metric '{name}' in --quality-tolerance {item!r}; use one of "
                             f"{', '.join(default_tolerances())}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"--quality-tolerance {item!r}: expected NAME=NUMBER, e.g. psnr=0.5") from None
        if out[name] < 0:
            raise ValueError(f"--quality-tolerance {item!r}: a tolerance cannot be negative")
    return out
