"""``bench targets``: measure every registered face recognition target on LFW and show the zoo.

For each available target: balanced 10-fold LFW verification accuracy, TAR at FAR 1e-2, cosine thresholds at
FAR 1e-2 and 1e-3, and embedding time per face (``bench.measures.calibrate``). Results are cached per target and per
LFW copy in ``$BENCH_HOME/calibration/<name>/<fingerprint>.json`` (``bench.measures.calibration_store``) and reused until
the weights or the protocol change (or ``--recalibrate``); a run uses the calibration of the LFW copy under its
own data root. Unavailable targets are listed with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bench.commands._ui import add_format_option, wants_json, wide_console
from bench.core.checksums import IntegrityError
from bench.core.devices import resolve_device
from bench.data.datasets import DataError, find_identity_folder, load_identity_folders, resolve_data_root
from bench.measures.calibrate import calibrate, stale_reason
from bench.measures.calibration_store import is_weak, load_calibration, save_calibration
from bench.registry import TARGETS, UnknownNameError
from bench.report.formatting import number, percent


def lfw_root_under(data_root: Path) -> Path:
    """The LFW folder (holding images/ and labels/) under a data root."""
    images = find_identity_folder(data_root, "lfw")
    return images.parent if images.name == "images" else images


def rich_tracker(progress: Progress, prefix: str) -> Callable[[Iterable, int, str], Iterator]:
    def track(items: Iterable, total: int, description: str) -> Iterator:
        task = progress.add_task(f"{prefix}: {description}", total=total)
        for item in items:
            yield item
            progress.advance(task)

    return track


def target_row(name: str, lfw_root: Path, fingerprint: str, args, progress: Progress) -> dict[str, Any]:
    entry = TARGETS.entry(name)
    ok, reason = entry.availability()
    cls = entry.cls
    row: dict[str, Any] = {
        "name": name,
        "available": bool(ok),
        "reason": None if ok else reason,
        "differentiable": getattr(cls, "differentiable", None),
        "embedding_dim": getattr(cls, "embedding_dim", None),
        "input_size": getattr(getattr(cls, "framing", None), "size", None),
    }
    if not ok:
        return row
    target = TARGETS.create(name, device=args.device)
    try:
        record = load_calibration(name, fingerprint)
        why = "--recalibrate" if args.recalibrate else stale_reason(record, target, fingerprint)
    except IntegrityError as exc:  # a cached calibration whose bytes changed: measure again
        record, why = {}, str(exc)
    if why:
        progress.console.print(f"[bold]{name}[/bold]: calibrating on {lfw_root} ({why})")
        try:
            record = calibrate(target, lfw_root, track=rich_tracker(progress, name))
        except Exception as exc:  # one target failing must not hide the others
            row["reason"] = f"calibration failed: {type(exc).__name__}: {exc}"
            return row
        path = save_calibration(record)
        progress.console.print(
            f"[bold]{name}[/bold]: LFW {100 * record['lfw_accuracy']:.2f} +- {100 * record['lfw_accuracy_std']:.2f}"
            f", saved {path}"
        )
    row.update(
        {
            "lfw_accuracy": record.get("lfw_accuracy"),
            "lfw_accuracy_std": record.get("lfw_accuracy_std"),
            "tar_far1e-2": record.get("tar_far1e-2"),
            "threshold_far1e-2": record.get("thresholds", {}).get("far1e-2"),
            "threshold_far1e-3": record.get("thresholds", {}).get("far1e-3"),
            "weak": is_weak(record.get("lfw_accuracy")),
            "ms_per_face": record.get("ms_per_face"),
            "cpu_ms_per_face": record.get("cpu_ms_per_face"),
            "pairs": record.get("pairs"),
            "photos_embedded": record.get("photos_embedded"),
            "photos_failed": record.get("photos_failed"),
            "calibrated": record.get("date"),
        }
    )
    return row


def _pct(value: float | None, std: float | None = None) -> str:
    spread = percent(std, 2, na="")
    return percent(value, 2, na="") + (f" ± {spread}" if value is not None and spread else "")


def _short(reason: str | None, limit: int = 60) -> str:
    """The first clause of a reason, for the table (``--json`` keeps it whole)."""
    head = (reason or "").split(": ", 1)[0]
    return head if len(head) <= limit else head[: limit - 1] + "…"


def render(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title=f"face recognition targets ({len(rows)}), LFW balanced 10-fold",
                  caption="weak: below 90% LFW accuracy; reasons shortened, `bench targets --json` or "
                          "`bench list targets` gives them whole")
    for col, justify in [("name", "left"), ("available", "left"), ("diff.", "left"), ("dim", "right"),
                         ("input", "right"), ("LFW acc. %", "right"), ("TAR@FAR1e-2 %", "right"),
                         ("thr FAR1e-2", "right"), ("thr FAR1e-3", "right"), ("ms/face", "right"),
                         ("CPU ms/face", "right"), ("reason", "left")]:
        table.add_column(col, justify=justify, overflow="fold")
    for r in rows:
        diff = r.get("differentiable")
        table.add_row(
            r["name"],
            "yes" if r["available"] else "[red]no[/red]",
            "" if diff is None else ("yes" if diff else "no"),
            number(r.get("embedding_dim"), "d", na=""),
            number(r.get("input_size"), "d", na=""),
            _pct(r.get("lfw_accuracy"), r.get("lfw_accuracy_std"))
            + (" [yellow]weak[/yellow]" if r.get("weak") else ""),
            _pct(r.get("tar_far1e-2")),
            number(r.get("threshold_far1e-2"), ".3f", na=""),
            number(r.get("threshold_far1e-3"), ".3f", na=""),
            number(r.get("ms_per_face"), ".1f", na=""),
            number(r.get("cpu_ms_per_face"), ".1f", na=""),
            _short(r.get("reason")),
        )
    console.print(table)


def run(args) -> int:
    err = Console(stderr=True)
    import torch

    from bench.core.devices import default_threads

    torch.set_num_threads(args.threads or default_threads())
    try:
        names = args.only or TARGETS.names()
        for name in names:
            TARGETS.entry(name)
    except UnknownNameError as exc:
        err.print(f"[red]{exc}[/red]")
        return 2
    try:
        data_root, how = resolve_data_root(args.data_root)
        lfw_root = lfw_root_under(data_root)
        fingerprint = load_identity_folders(lfw_root, "lfw").fingerprint()
        args.device = resolve_device(args.device)
    except (DataError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        return 2
    err.print(f"LFW: {lfw_root} (data root from {how})")
    rows = []
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err) as progress:
        for name in names:
            rows.append(target_row(name, lfw_root, fingerprint, args, progress))
    if not args.only:
        for module, error in sorted(TARGETS.broken_modules().items()):
            rows.append({"name": module, "available": False, "reason": f"module failed to import: {error}"})
    if wants_json(args):
        print(json.dumps(rows, indent=2, default=str))
    else:
        render(rows, wide_console())
    return 0 if all(r["available"] and "lfw_accuracy" in r for r in rows if r["available"]) else 1


def add_parser(sub) -> None:
    p = sub.add_parser(
        "targets",
        help="measure the face recognition targets on LFW (accuracy, thresholds at FAR, speed) and list them",
    )
    p.add_argument("--data-root", help="data root holding lfw/images/<Name>/ and lfw/labels/pairs.txt")
    add_format_option(p, what=": json prints a JSON array")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these targets")
    p.add_argument("--recalibrate", action="store_true", help="measure again even when a calibration is cached")
    p.add_argument("--device", default="auto", help="torch device for the targets: auto (CUDA when present), cpu, "
                                                    "cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch threads (default: the cores this process may use)")
    p.set_defaults(func=run)
