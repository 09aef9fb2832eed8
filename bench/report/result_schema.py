"""The published result format: leaderboard entries and their PSR cells as dataclasses, and the versioned JSON
Schema every published entry is validated against (``results/schema/entry-v1.json``, written on every publish).

An entry is one method in one scenario. It comes from a run (``origin: "run"``, regenerated on every publish)
or from outside (``origin: "submitted"``: someone else's numbers on the same protocol, kept and merged; see
docs/submitting.md). A submitted entry carries who made it and how (``Submission``: author, paper, code URL,
hardware) and its evidence: each user's headline PSR per target|adversary cell (``per_user_top1``), from which
its cells, worst case, interval and rank are recomputed and checked. The schema's cell properties follow the PSR
measures ``bench.measures.registry.METRICS`` declares; a cell may hold measures declared later (any name with a
fraction and a ``_ci`` interval), so adding a measure keeps every older entry valid.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from bench.measures.registry import METRICS
from bench.report.formatting import CELL_STATUSES

SCHEMA_VERSION = 1
SCHEMA_ID = f"cloakbench-entry/{SCHEMA_VERSION}"
SCHEMA_FILE = f"schema/entry-v{SCHEMA_VERSION}.json"  # under a published folder
ORIGINS = ("run", "submitted")
STATUSES = ("ok", "failed", "incomplete", "unavailable")
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
_INTERVAL = {"type": "array", "items": _FRACTION, "minItems": 2, "maxItems": 2}


def _nullable(schema: dict) -> dict:
    """``schema`` or null (type keywords such as minimum apply to values of their type only)."""
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


@dataclass(frozen=True)
class Submission:
    """Who made a submitted entry, and how (all shown beside the entry)."""

    author: str
    paper: str  # a citation or URL; "unpublished" is allowed
    code: str  # URL of the code that produced the masks
    hardware: str  # e.g. "1x A100 80GB" or "CPU, 16 cores"
    contact: str | None = None
    notes: str | None = None


@dataclass
class Cell:
    """One target x adversary cell: each PSR measure's value and 95% interval over users; or a failure."""

    values: dict[str, float | None] = field(default_factory=dict)  # measure name -> PSR
    intervals: dict[str, list[float]] = field(default_factory=dict)  # measure name -> [low, high]
    missed: int | None = None  # photo space: photos the attacker's detector found no face in
    status: str | None = None  # "failed" where a task of the cell failed, "pending" where one has not run yet
    reason: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        cell = cls(missed=data.get("missed"), status=data.get("status"), reason=data.get("reason"))
        for key, value in data.items():
            if key.endswith("_ci"):
                cell.intervals[key[: -len("_ci")]] = list(value) if value is not None else None
            elif key not in ("missed", "status", "reason"):
                cell.values[key] = value
        return cell

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.status is None else {"status": self.status}
        for name in sorted(set(self.values) | set(self.intervals)):  # by name, as the leaderboard writes them
            if name in self.values:
                out[name] = self.values[name]
            if name in self.intervals:
                out[f"{name}_ci"] = self.intervals[name]
        if self.missed is not None:
            out["missed"] = self.missed
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class Entry:
    """A leaderboard entry. The typed fields are what every view and the ranking read; ``fields`` keeps every
    other value in its JSON order (the registry's measures, robustness summaries, paper facts ...)."""

    method: str
    scenario: str
    status: str
    psr: dict[str, dict[str, Cell]] = field(default_factory=dict)  # target -> adversary -> cell
    per_user: dict[str, dict[str, float]] = field(default_factory=dict)  # "target|adversary" -> user -> PSR
    origin: str = "run"
    submission: Submission | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        per_user_key = METRICS.headline().per_user_field
        typed = {"method", "scenario", "status", "psr", per_user_key, "origin", "submission", "schema"}
        submission = data.get("submission")
        return cls(method=data["method"], scenario=data["scenario"], status=data["status"],
                   psr={t: {a: Cell.from_dict(c) for a, c in per.items()} for t, per in (data.get("psr") or {}).items()},
                   per_user=data.get(per_user_key) or {}, origin=data.get("origin", "run"),
                   submission=Submission(**submission) if submission else None,
                   fields={k: v for k, v in data.items() if k not in typed})

    def to_dict(self) -> dict[str, Any]:
        """The entry as published: schema and identity first, then the fields in their order."""
        out: dict[str, Any] = {"schema": SCHEMA_ID, "origin": self.origin, "method": self.method}
        if self.submission is not None:
            out["submission"] = {k: v for k, v in dataclasses.asdict(self.submission).items() if v is not None}
        rest = dict(self.fields)
        head = {k: rest.pop(k) for k in ("kind",) if k in rest}
        out.update(head, scenario=self.scenario, status=self.status)
        out.update({k: rest.pop(k) for k in ("reason", "budget", "config", "overrides") if k in rest})
        out["psr"] = {t: {a: c.to_dict() for a, c in per.items()} for t, per in self.psr.items()}
        out.update(rest)
        if self.per_user:
            out[METRICS.headline().per_user_field] = self.per_user
        return out


def _cell_schema() -> dict[str, Any]:
    declared = {}
    for m in METRICS.psr():
        declared[m.name] = {**_nullable(_FRACTION), "description": f"{m.label} ({m.kind}): {m.compares}"}
        declared[f"{m.name}_ci"] = {**_nullable(_INTERVAL), "description": f"95% bootstrap interval of {m.label}"}
    return {"type": "object", "properties": {
        **declared,
        "missed": {"type": "integer", "minimum": 0, "description": "photos the attacker's detector found no face in"},
        "status": {"enum": list(CELL_STATUSES)}, "reason": {"type": ["string", "null"]}},
        # measures declared after this schema: a fraction and its interval
        "patternProperties": {"^[a-z0-9][a-z0-9.-]*_ci$": _nullable(_INTERVAL),
                              "^(?!(missed|status|reason)$)[a-z0-9][a-z0-9.-]*$": _nullable(_FRACTION)},
        "additionalProperties": False}


def entry_schema() -> dict[str, Any]:
    """The JSON Schema of a published entry (draft 2020-12), from the dataclasses and the metric registry."""
    headline = METRICS.headline()
    measures = {m.entry: {**_nullable({"type": "integer" if m.fmt.endswith("d") else "number"}),
                          "description": f"{m.label}: {m.compares} ({m.aggregate} over users)"} for m in METRICS.all()}
    submission = {"type": "object", "required": [f.name for f in dataclasses.fields(Submission)
                                                  if f.default is dataclasses.MISSING],
                  "properties": {f.name: {"type": "string", "minLength": 1} for f in dataclasses.fields(Submission)},
                  "additionalProperties": False}
    cell_key = "^[^|]+\\|[^|]+$"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"cloakbench leaderboard entry, version {SCHEMA_VERSION}",
        "description": "One method in one scenario on one protocol; see docs/submitting.md.",
        "type": "object",
        "required": ["schema", "method", "scenario", "status", "psr"],
        "properties": {
            "schema": {"const": SCHEMA_ID},
            "origin": {"enum": list(ORIGINS)},
            "submission": submission,
            "method": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._+-]*$"},
            "kind": {"type": ["string", "null"]},
            "scenario": {"type": "string", "minLength": 1},
            "status": {"enum": list(STATUSES)},
            "reason": {"type": ["string", "null"]},
            # bounds as numbers; "note" says in words what limits a change no number bounds (an obfuscation)
            "budget": {"type": ["object", "null"], "properties": {"note": {"type": "string"}},
                       "additionalProperties": {"type": ["number", "null"]}},
            "config": {"type": ["object", "null"]},
            "psr": {"type": "object", "additionalProperties": {"type": "object",
                                                                "additionalProperties": {"$ref": "#/$defs/cell"}}},
            headline.per_user_field: {
                "type": "object", "description": f"evidence: each user's {headline.label} per target|adversary cell",
                "propertyNames": {"pattern": cell_key},
                "additionalProperties": {"type": "object", "additionalProperties": _FRACTION, "minProperties": 1}},
            headline.worst_field: {**_nullable(_FRACTION), "description": "the primary score: worst cell"},
            headline.mean_field: _nullable(_FRACTION),
            headline.ci_field: _nullable(_INTERVAL),
            **measures,
            "users": {"type": "integer", "minimum": 0},
            "seeds": {"type": "array", "items": {"type": "integer"}},
            "rank": {"type": ["integer", "null"], "minimum": 1},
            "unranked": {"type": "string", "description": "why a ranked entry of the run has no rank (fewer users)"},
            "targets": {"type": "array", "items": {"type": "string"}},
            "adversaries": {"type": "array", "items": {"type": "string"}},
            "protocol": {"type": "string"},
            "space": {"type": "string"},
            "run": {"type": "object", "properties": {
                "protocol": {"type": "object"}, "users": {"type": "array", "items": {"type": "string"}}}},
        },
        "allOf": [{"if": {"properties": {"origin": {"const": "submitted"}}, "required": ["origin"]},
                   "then": {"required": ["submission", headline.per_user_field, "targets", "adversaries", "run"]}}],
        "$defs": {"cell": _cell_schema()},
    }


def schema_errors(data: Any) -> list[str]:
    """Every way ``data`` breaks the entry schema, one line each (``where: what``); empty when it is valid."""
    validator = jsonschema.Draft202012Validator(entry_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    lines = [f"{'/'.join(str(p) for p in e.absolute_path) or '(entry)'}: {e.message}" for e in errors]
    return list(dict.fromkeys(lines))  # a declared measure also matches the pattern of later ones


def write_schema(dest: str | Path) -> Path:
    """Write the entry schema into a published folder (``SCHEMA_FILE``)."""
    path = Path(dest) / SCHEMA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry_schema(), indent=2) + "\n")
    return path


if __name__ == "__main__":  # python -m bench.report.result_schema: print the schema
    print(json.dumps(entry_schema(), indent=2))
