"""``bench protect``: learn a personalized mask from a user's photos (or reuse a saved one) and protect any number
of new photos at full resolution.

    bench protect --method chameleon --fit me/ --photos new/ --out protected/          # fits, saves protected/mask.npz
    bench protect --mask protected/mask.npz --photos more/ --out protected-more/       # instant, no fitting

Per-image methods (pgd, fawkes, lowkey ...) work too: they optimise every face. Methods that take an identity
bank (Fawkes, TIP-IM, FaceCloak, the classifier attacks) are bound to a context as in a run: the bank is drawn
from ``--data-root``, or from the LFW subset embedded in the package, and the summary says which. Every photo
ends protected, copied unchanged (no face, or no face of the user) or reported unreadable;
``protect-summary.json`` in the output folder lists each with its reason and time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.markup import escape

from bench.commands._progress import console_reporter
from bench.commands._settings import one_method_overrides
from bench.commands._ui import wide_console
from bench.core.devices import resolve_device
from bench.core.validation import UsageError
from bench.data.datasets import DataError
from bench.data.decoding import FaceError
from bench.data.detectors import make_detector
from bench.data.faces import Aligner, canvases_to_tensor
from bench.models.weights import WeightError, ensure
from bench.registry import METHODS, TARGETS, ConfigError, UnknownNameError
from bench.run.assembly import standalone_context
from bench.run.budget import BudgetExceeded
from bench.run.context import ContextError
from bench.run.maskfile import declared_bounds, load_mask, save_mask
from bench.run.protect_photos import PhotoProtection, UserMatcher, photo_files


def _check_args(args) -> None:
    if bool(args.mask) == bool(args.method):
        raise UsageError("give either --method NAME with --fit DIR (fit a new protector) or --mask FILE (reuse one)")
    if args.method and not args.fit:
        raise UsageError(f"--method {args.method} needs --fit DIR: the user's own photos to learn from")
    for flag, folder in (("--photos", args.photos), ("--fit", args.fit)):
        if folder and not Path(folder).is_dir():
            raise UsageError(f"{flag} {folder}: no such folder")
    if args.mask and not Path(args.mask).is_file():
        raise UsageError(f"--mask {args.mask}: no such file")
    out, photos = Path(args.out).resolve(), Path(args.photos).resolve()
    if out == photos or photos in out.parents:
        raise UsageError(f"--out {args.out} lies inside --photos {args.photos}: protected photos would be read back "
                         "as inputs; choose another folder")
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality {args.quality}: must be 1..100")
    if args.feather < 0:
        raise UsageError(f"--feather {args.feather}: must be >= 0 canvas pixels")


def _load_surrogates(names: list[str], device: str, log) -> list:
    loaded = []
    for name in names:
        entry = TARGETS.entry(name)
        if not entry.cls.differentiable:
            raise UsageError(f"surrogate {name} is a black box (no gradients); choose a differentiable target")
        target = TARGETS.create(name, device=device)
        for spec in type(target).weights:
            ensure(spec, log=log)
        target.load()
        loaded.append(target)
    return loaded


def _fit(args, surrogates, device, console):
    """Fit the method on the user's photos; returns (protector, method bound to its context, user canvases)."""
    overrides = one_method_overrides(args.method, args.set or [])
    method = METHODS.create(args.method, **overrides)
    ok, reason = METHODS.entry(args.method).availability()
    if not ok:
        raise UsageError(f"method {args.method} is unavailable: {reason}")
    aligner = Aligner(device=device)
    # what a run would hand the method: its identity bank comes from --data-root, else the embedded LFW subset
    reporter = console_reporter(console)  # the identity bank's alignment and the fit's own steps, when it reports them
    method = method.bind(standalone_context(args.data_root, device, aligner=aligner, reporter=reporter), args.seed)
    if method.needs():
        console.print(f"identity bank: {', '.join(n.label for n in method.needs())} from "
                      f"{method.context.data_root} ({'--data-root' if args.data_root else 'embedded LFW subset'})")
    canvases, skipped = [], []
    for path in photo_files(Path(args.fit)):
        try:
            canvases.append(aligner.align(path).canvas)
        except FaceError as exc:
            skipped.append(str(exc))
    for reason in skipped:
        console.print(f"[yellow]fit photo skipped[/yellow]: {reason}")
    if not canvases:
        raise UsageError(f"--fit {args.fit}: no photo with a usable face")
    photos = canvases_to_tensor(canvases).to(device)
    console.print(f"fitting {args.method} on {len(canvases)} photo(s) against {', '.join(s.name for s in surrogates)}")
    t0 = time.perf_counter()
    with reporter.live():
        protector = method.fit(photos, surrogates, args.seed)
    console.print(f"fitted in {time.perf_counter() - t0:.1f} s")
    return protector, method, photos


def run(args) -> int:
    console = wide_console()
    try:
        _check_args(args)
        device = resolve_device(args.device)
        saved = load_mask(args.mask) if args.mask else None
        surrogate_names = (args.surrogates.split(",") if args.surrogates
                           else (saved.header["surrogates"] if saved else ["sface", "dlib-resnet"]))
        if args.method:
            METHODS.entry(args.method)  # an unknown name fails here, with the known ones
        surrogates = _load_surrogates(surrogate_names, device, console.print)
    except (UsageError, ValueError, UnknownNameError, ConfigError, WeightError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        return 2

    from methods.base import MaskProtector

    out = Path(args.out)
    summary: dict = {"method": args.method, "device": device, "surrogates": [s.name for s in surrogates]}
    if saved is not None:
        protector = MaskProtector(saved.mask.to(device))
        templates = {n: t for n, t in saved.templates.items()}
        bounds = declared_bounds(saved.header)
        summary.update(method=saved.header.get("method"), mask=str(args.mask))
    else:
        try:
            protector, method, photos = _fit(args, surrogates, device, console)
        except (UsageError, ConfigError, ValueError, ContextError, DataError) as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
            return 2
        if method.needs():
            summary["identity_bank"] = {
                "from": str(method.context.data_root),
                "source": "--data-root" if args.data_root else "embedded LFW subset",
                "used": dict(method.context.used),  # need -> content digest of the bank the method took
            }
        import torch

        with torch.no_grad():
            templates = {s.name: s.embed(photos).mean(0) for s in surrogates}
        bounds = method.budget().bounds()
        state = protector.state()
        if "mask" in state:
            mask_path = save_mask(args.save_mask or out / "mask.npz", state["mask"], {
                "method": args.method, "config": _jsonable(method.config), "budget": method.budget().as_dict(),
                "surrogates": [s.name for s in surrogates], "fit_photos": len(photos), "seed": args.seed,
            }, templates)
            summary["mask"] = str(mask_path)
            console.print(f"mask saved to {mask_path} (reuse it: bench protect --mask {mask_path} --photos DIR "
                          "--out DIR)")
        elif args.save_mask:
            console.print(f"[yellow]{args.method} is a per-image method: it has no mask to save[/yellow]")

    matcher = None
    if args.faces == "user":
        matcher_target = next((s for s in surrogates if s.name in templates), None)
        if matcher_target is None:
            console.print("[red]error:[/red] no face template of the user for these surrogates; use --faces all")
            return 2
        matcher = UserMatcher(matcher_target, templates[matcher_target.name], console.print)
        summary["faces"] = f"the user's: {matcher.describe()}"
    else:
        summary["faces"] = "every face"
    summary["detector"] = args.detector
    job = PhotoProtection(protector, make_detector(args.detector, device), device, matcher, args.feather,
                          args.quality, args.strip_metadata, bounds, summary["method"] or "the mask")
    files = photo_files(Path(args.photos))
    reporter = console_reporter(console)
    results = []
    with reporter.live():
        reporter.phase("protect photos", len(files))
        for path in files:
            rel = path.relative_to(args.photos)
            try:
                result = job.protect_file(path, out / rel)
            except BudgetExceeded as exc:
                console.print(f"[red]error:[/red] {escape(str(exc))}; stopped, {rel} and later photos not written",
                              soft_wrap=True, highlight=False)
                return 2
            if result.status not in ("protected",):
                reporter.message(f"[yellow]{result.status}[/yellow] {rel}: {result.reason}")
            results.append(result)
            reporter.advance(str(rel))
    summary["photos"] = [vars(r) for r in results]
    counts = {s: sum(r.status == s for r in results) for s in ("protected", "no-face", "not-the-user", "unreadable")}
    timed = [r.ms for r in results if r.status == "protected"]
    summary["counts"] = counts
    summary["faces_found"] = sum(r.faces for r in results)
    summary["faces_protected"] = sum(r.protected_faces for r in results)
    summary["ms_per_photo"] = sum(timed) / len(timed) if timed else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "protect-summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.print(f"{len(files)} photo(s): {counts['protected']} protected ({summary['faces_protected']} of "
                  f"{summary['faces_found']} faces), {counts['no-face']} without a face and "
                  f"{counts['not-the-user']} without the user's face (both copied unchanged), "
                  f"{counts['unreadable']} unreadable (not written)"
                  + (f"; {summary['ms_per_photo']:.0f} ms per protected photo (detect, align, protect, put back)"
                     if timed else ""))
    console.print(f"summary: {out / 'protect-summary.json'}")
    return 0 if counts["unreadable"] == 0 else 1


def _jsonable(config) -> dict:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(config), default=str))


def add_parser(sub) -> None:
    p = sub.add_parser("protect", help="protect a user's photos at full resolution (fit a mask, or reuse one)")
    p.add_argument("--method", help="protection method (see `bench list methods`); with --fit")
    p.add_argument("--fit", help="folder of the user's own photos to learn the protection from")
    p.add_argument("--mask", help="a mask file saved by an earlier `bench protect` (no fitting)")
    p.add_argument("--photos", required=True, help="folder of photos to protect (searched recursively)")
    p.add_argument("--out", required=True, help="folder for the protected photos (same names and formats)")
    p.add_argument("--save-mask", help="where to save the fitted mask (default OUT/mask.npz)")
    p.add_argument("--surrogates", help="comma-separated differentiable targets to fit against "
                                        "(default sface,dlib-resnet, or the mask file's)")
    p.add_argument("--faces", choices=("user", "all"), default="user",
                   help="protect only the user's face (matched against the fit photos; default) or every face")
    p.add_argument("--set", action="append", metavar="NAME.KEY=VALUE",
                   help="override one config value of the method, as in `bench run` (pgd.steps=50); KEY=VALUE "
                        "for short (repeatable)")
    p.add_argument("--data-root", help="data root whose people form the identity bank of methods that need one "
                                       "(fawkes, tip-im, facecloak, the classifier attacks); default: the LFW "
                                       "subset embedded in the package")
    p.add_argument("--seed", type=int, default=0, help="random seed of the fit (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality of the written photos (1..100)")
    p.add_argument("--feather", type=int, default=12, help="canvas pixels over which the change fades at the "
                                                           "crop border (0: none)")
    p.add_argument("--detector", choices=("mtcnn", "yunet", "scrfd"), default="mtcnn",
                   help="face detector for the photos to protect: mtcnn (default; what fitting aligns with), yunet "
                        "(OpenCV's, tens of times faster on large photos: docs/photos.md) or scrfd (needs "
                        "insightface)")
    p.add_argument("--strip-metadata", action="store_true", help="drop EXIF and ICC metadata from written photos")
    p.set_defaults(func=run)
