"""``bench perf``: throughput of targets and methods as ratios measured in one process (see bench/perf.py).

Methods run shortened (``--set`` changes it): a ratio and a per-step cost do not depend on the step count, a fit
time per user does, so each method's row names the setting it ran at.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import torch
from rich.table import Table

from bench.commands._ui import wide_console
from bench.commands.run import method_overrides
from bench.data import load_identity_folders, resolve_data_root
from bench.devices import resolve_device
from bench.faces import Aligner, FaceError, canvases_to_tensor
from bench.perf import method_cost, target_rates
from bench.registry import METHODS, TARGETS, ConfigError, UnknownNameError
from bench.weights import WeightError, ensure

# Shortened settings: enough steps for steady timing, minutes in all on two CPU cores.
SHORT = {"chameleon": {"epochs": 4}, "uap": {"iterations": 4}, "pgd": {"steps": 5}}


def _faces(data_root: str | None, count: int, device: str) -> torch.Tensor:
    root, _ = resolve_data_root(data_root)
    ds = load_identity_folders(root, "lfw", min_photos=count)
    aligner = Aligner(device=device)
    for name in sorted(ds.identities):
        canvases = []
        for path in ds.identities[name]:
            try:
                canvases.append(aligner.align(path).canvas)
            except FaceError:
                continue
            if len(canvases) == count:
                return canvases_to_tensor(canvases).to(device)
    raise ValueError(f"no identity under {root} has {count} photos with a usable face")


def _load(names: list[str], device: str) -> list:
    targets = []
    for name in names:
        target = TARGETS.create(name, device=device)
        for spec in type(target).weights:
            ensure(spec)
        target.load()
        targets.append(target)
    return targets


def measure(args, device: str) -> dict:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    photos = _faces(args.data_root, args.batch * 2, device)
    fit_photos, probes = photos[: args.batch], photos[args.batch:]
    targets = _load(args.targets.split(","), device)
    surrogates = [t for t in targets if t.name in args.surrogates.split(",")]
    rates = {t.name: target_rates(t, fit_photos, args.repeat) for t in targets}
    overrides = method_overrides(SHORT, args.set or [])
    costs = []
    for name in args.methods.split(","):
        method = METHODS.create(name, **overrides.get(name, {}))
        cost = method_cost(method, surrogates, fit_photos, probes, rates)
        costs.append({**asdict(cost), "setting": overrides.get(name, {})})
    return {"device": device, "threads": torch.get_num_threads(), "batch": args.batch,
            "targets": [asdict(r) for r in rates.values()], "methods": costs}


def _table(result: dict) -> tuple[Table, Table]:
    t = Table(title=f"targets on {result['device']} ({result['threads']} threads, batch {result['batch']})")
    for col in ("target", "forward img/s", "fwd+bwd img/s", "raw forward img/s", "eval_ratio"):
        t.add_column(col, justify="right" if col != "target" else "left")
    for r in result["targets"]:
        t.add_row(r["name"], f"{r['forward_ips']:.1f}", _fmt(r["forward_backward_ips"], ".1f"),
                  _fmt(r["raw_forward_ips"], ".1f"), _fmt(r["eval_ratio"], ".2f"))
    m = Table(title="methods (shortened settings as named)")
    for col in ("method", "setting", "fit s/user", "ms/photo", "fit_ratio"):
        m.add_column(col, justify="right" if col not in ("method", "setting") else "left")
    for r in result["methods"]:
        m.add_row(r["name"], ", ".join(f"{k}={v}" for k, v in r["setting"].items()) or "defaults",
                  f"{r['fit_s']:.2f}", f"{r['protect_ms_per_photo']:.0f}", _fmt(r["fit_ratio"], ".2f"))
    return t, m


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def run(args) -> int:
    console = wide_console()
    try:
        if args.device == "auto" and torch.cuda.is_available():
            devices = ["cpu", "cuda"]  # side by side when both exist
        else:
            devices = [resolve_device(args.device)]
        results = [measure(args, device) for device in devices]
    except (ValueError, UnknownNameError, ConfigError, WeightError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return 0
    for result in results:
        for table in _table(result):
            console.print(table)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("perf", help="measure target and method throughput as ratios (bench/perf.py)")
    p.add_argument("--targets", default="sface,dlib-resnet,faceres,mobileface")
    p.add_argument("--surrogates", default="sface,dlib-resnet", help="targets the methods fit against")
    p.add_argument("--methods", default="chameleon,uap,pgd")
    p.add_argument("--set", action="append", metavar="METHOD.KEY=VALUE", help="change a method's setting")
    p.add_argument("--batch", type=int, default=4, help="fit photos (and probe photos) per method: Chameleon's batch")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per rate (the median is kept)")
    p.add_argument("--data-root", help="faces to time on (default: as bench run)")
    p.add_argument("--device", default="auto", help="auto (CPU, and CUDA beside it when present), cpu, cuda")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    p.set_defaults(func=run)
