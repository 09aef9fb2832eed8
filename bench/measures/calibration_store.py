"""Where target calibrations are kept: one file per target and per LFW copy it was measured on.

``$BENCH_HOME/calibration/<target>/<fingerprint>.json``, the fingerprint being ``Dataset.fingerprint()`` of the
LFW copy (file names and sizes): a recalibration on another copy does not overwrite this one, and a run uses
the calibration measured on the LFW copy under its own data root. Files written before calibrations were keyed
(``calibration/<target>.json``) are still read, under the fingerprint they record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.core.checksums import IntegrityError, file_sha256, mismatch, record, sidecar, write_checked
from bench.core.paths import bench_home


def calibration_dir() -> Path:
    return bench_home() / "calibration"


def calibration_path(name: str, data: str) -> Path:
    return calibration_dir() / name / f"{data}.json"


def _read(path: Path) -> dict[str, Any]:
    """A calibration file's record. One whose bytes no longer match the checksum recorded when it was written
    raises :class:`IntegrityError`; one written before checksums were kept is adopted as found."""
    if not sidecar(path).exists():
        record(path, file_sha256(path))
    problem = mismatch(path)
    if problem:
        raise IntegrityError(f"calibration {path.parent.name}: {problem}; run `bench targets --only "
                             f"{path.parent.name if path.parent != calibration_dir() else path.stem} --recalibrate` "
                             "to measure it again")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def calibrations(name: str) -> dict[str, dict[str, Any]]:
    """Every calibration of target ``name``, by the fingerprint of the LFW copy it was measured on."""
    if not name:
        return {}
    found: dict[str, dict[str, Any]] = {}
    legacy = _read(calibration_dir() / f"{name}.json") if (calibration_dir() / f"{name}.json").exists() else {}
    if legacy.get("data", {}).get("fingerprint"):
        found[legacy["data"]["fingerprint"]] = legacy
    folder = calibration_dir() / name
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            record = _read(path)
            if record:
                found[path.stem] = record
    return found


def load_calibration(name: str, data: str | None = None) -> dict[str, Any]:
    """The calibration of ``name`` measured on LFW copy ``data`` ({} if none); without ``data``, the most recent
    one of any copy (for listings, never for a run's thresholds)."""
    found = calibrations(name)
    if data is not None:
        return found.get(data, {})
    return max(found.values(), key=lambda r: r.get("date") or "", default={})


def save_calibration(record: dict[str, Any]) -> Path:
    path = calibration_path(record["name"], record["data"]["fingerprint"])
    write_checked(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
    return path


WEAK_LFW_ACCURACY = 0.90  # below this balanced LFW accuracy a target is listed as weak


def is_weak(lfw_accuracy: float | None) -> bool:
    return lfw_accuracy is not None and lfw_accuracy < WEAK_LFW_ACCURACY


__all__ = ["calibration_dir", "calibration_path", "calibrations", "load_calibration", "save_calibration",
           "is_weak", "WEAK_LFW_ACCURACY"]
