"""Regression check of a run against a stored baseline (for CI): PSR and image quality per method.

The baseline is a reduced copy of a run's ``leaderboard.json``, written only by an explicit
``bench check RUN_DIR --update-baseline FILE``: per method its status, PSR@1 per target x adversary, the worst-case
PSR@1, and every metric ``bench.metric_registry.METRICS`` declares a check tolerance for (SSIM, PSNR, LPIPS
today). A check fails when a value moves beyond its tolerance in either direction (a
better score also means the baseline no longer describes the code), when a method or a PSR cell of the baseline
is missing, or when a method that was ``ok`` is now unavailable or failed. Methods, cells and values that are new
are reported but do not fail the check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.formatting import finer, finite
from bench.metric_registry import METRICS

BASELINE_FORMAT = "cloakbench-baseline/1"
PSR_TOLERANCE = 0.05  # absolute, PSR is a fraction in [0, 1]


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
    tolerance: float | None
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
        psr = {}
        for target, per_adv in (entry.get("psr") or {}).items():
            for adversary, cell in (per_adv or {}).items():
                top1 = finite(cell.get("top1")) if isinstance(cell, dict) else None
                if top1 is not None:
                    psr[f"{target}|{adversary}"] = top1
        methods[_entry_key(entry)] = {
            "status": entry.get("status", "ok"),
            "psr_top1_worst": finite(entry.get("psr_top1_worst")),
            "psr_top1": psr,
            **{m.entry: finite(entry.get(m.entry)) for m in METRICS.checked()},
        }
    run = board.get("run") or {}
    return {"format": BASELINE_FORMAT, "suite": run.get("suite"), "created": run.get("created"),
            "primary_score": run.get("primary_score"), "methods": methods}


def load_leaderboard(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "leaderboard.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `bench leaderboard {run_dir}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); regenerate it with `bench leaderboard {run_dir}`") from exc


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"baseline {path} not found: create it with `bench check RUN_DIR --update-baseline "
                                f"{path}`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"baseline {path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT or not isinstance(data.get("methods"), dict):
        raise ValueError(f"{path} is not a {BASELINE_FORMAT} baseline; write one with `bench check RUN_DIR "
                         f"--update-baseline {path}`")
    return data


def write_baseline(board: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reduce_board(board), indent=2, sort_keys=True) + "\n")
    return path


def _compare_value(method: str, metric: str, base: float | None, now: float | None, tol: float,
                   higher_is_better: bool | None) -> Finding | None:
    if base is None:
        return None if now is None else Finding(method, metric, None, now, tol, "new", "no baseline value")
    if now is None:
        return Finding(method, metric, base, None, tol, "fail", "missing now")
    delta = now - base
    if abs(delta) <= tol + 1e-12:
        return None
    if higher_is_better is None:
        return Finding(method, metric, base, now, tol, "fail", "changed")
    better = (delta > 0) == higher_is_better
    return Finding(method, metric, base, now, tol, "fail", "better: update the baseline" if better else "worse")


def compare(baseline: dict[str, Any], board: dict[str, Any], psr_tolerance: float = PSR_TOLERANCE,
            tolerances: dict[str, float] | None = None) -> list[Finding]:
    """Every difference between the baseline and the run that matters (failures and new things).
    ``tolerances`` overrides the registry's tolerance of some metrics (leaderboard field -> value)."""
    tolerances = {**default_tolerances(), **(tolerances or {})}
    now = reduce_board(board)
    findings: list[Finding] = []
    if baseline.get("suite") != now.get("suite"):
        findings.append(Finding("-", "suite", baseline.get("suite"), now.get("suite"), None, "fail",
                                "the run is of a different suite than the baseline"))
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
        checks = [("psr_top1_worst", base.get("psr_top1_worst"), cur["psr_top1_worst"], psr_tolerance, True)]
        for cell, value in (base.get("psr_top1") or {}).items():
            checks.append((f"psr_top1[{cell}]", value, cur["psr_top1"].get(cell), psr_tolerance, True))
        for cell, value in cur["psr_top1"].items():
            if cell not in (base.get("psr_top1") or {}):
                findings.append(Finding(method, f"psr_top1[{cell}]", None, value, psr_tolerance, "new", "new cell"))
        for m in METRICS.checked():
            checks.append((m.entry, base.get(m.entry), cur.get(m.entry), tolerances[m.entry], m.higher_is_better))
        for metric, b, n, tol, higher in checks:
            finding = _compare_value(method, metric, finite(b), finite(n), tol, higher)
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
