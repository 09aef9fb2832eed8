"""``bench list methods|attacks|targets|suites [--json]``."""

from __future__ import annotations

import json

from rich.table import Table

from bench.commands._ui import wide_console
from bench.registry import ATTACKS, METHODS, TARGETS

# The table shows the short fields; --json prints everything each plug-in describes.
TABLE_COLUMNS = {
    "methods": ("kind", "budget"),
    "attacks": ("kind",),
    "targets": ("differentiable", "embedding_dim", "input_size", "lfw_accuracy", "threshold_far1e-3", "license",
                "notes"),
    "suites": ("users", "description"),
}


def rows_for(kind: str) -> list[dict]:
    if kind == "suites":
        from bench.suites import SUITES

        # every setting of the suite (users a number or "all"), beside the listing's own fields
        return [{"name": n, "available": True, "reason": None, **s.as_dict()} for n, s in sorted(SUITES.items())]
    registry = {"methods": METHODS, "attacks": ATTACKS, "targets": TARGETS}[kind]
    return registry.describe()


def run(args) -> int:
    rows = rows_for(args.kind)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    keys = [k for k in TABLE_COLUMNS.get(args.kind, ()) if any(k in r for r in rows)]
    table = Table(title=f"{args.kind} ({len(rows)}; --json for every field)")
    for col in ["name", "available", *keys, "reason"]:
        table.add_column(col, overflow="fold")
    for row in rows:
        cells = [row["name"], "yes" if row["available"] else "[red]no[/red]"]
        cells += [_fmt(row.get(k)) + (" [yellow](weak)[/yellow]" if k == "lfw_accuracy" and row.get("weak") else "")
                  for k in keys]
        cells.append(row.get("reason") or "")
        table.add_row(*cells)
    wide_console().print(table)
    return 0


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list registered methods, attacks (adversaries), targets or suites")
    p.add_argument("kind", choices=["methods", "attacks", "targets", "suites"])
    p.add_argument("--json", action="store_true", help="print a JSON array (name, available, reason, ...)")
    p.set_defaults(func=run)
