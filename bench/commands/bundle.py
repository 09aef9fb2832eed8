"""``bench bundle DIR``: wheels, weights and calibrations for an offline node that has torch (bench/run/bundle.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands._ui import wide_console
from bench.commands.perf import DEFAULT_TARGETS as PERF_TARGETS
from bench.commands.weights import declared_specs
from bench.registry import ADVERSARIES, TARGETS, UnknownNameError
from bench.run.bundle import BundleError, write_bundle
from bench.run.plugins import expand
from bench.run.suites import get_suite


def suite_targets(suites: list[str]) -> list[str]:
    """Targets and surrogates of the named suites ("*" expanded)."""
    names: list[str] = []
    for name in suites:
        suite = get_suite(name)
        for target in [*expand(suite.targets, TARGETS), *suite.surrogates]:
            if target not in names:
                names.append(target)
    return names


def plugin_needs(targets: list[str], suites: list[str]) -> list[str]:
    """The ``run_packages`` of the targets and of the suites' adversaries."""
    classes = [TARGETS.entry(t).cls for t in targets]
    classes += [ADVERSARIES.entry(a).cls for s in suites for a in expand(get_suite(s).adversaries, ADVERSARIES)]
    return sorted({p for cls in classes for p in getattr(cls, "run_packages", ())})


def run(args) -> int:
    console = wide_console()
    try:
        suites = (args.suites or ("smoke,quick" if args.complete else "smoke")).split(",")
        targets = args.targets.split(",") if args.targets else suite_targets(suites)
        if args.perf:
            targets += [t for t in PERF_TARGETS.split(",") if t not in targets]
        specs = [spec for spec, _ in declared_specs([*targets, "lpips-alex"]) if spec.source != "path"]
        extras = tuple(e for e in (args.extras or "").split(",") if e)
        sizes = write_bundle(Path(args.dir), specs, targets, extras, log=lambda text: console.print(text, highlight=False),
                             plugin_needs=None if args.complete else plugin_needs(targets, suites), suite=suites[0],
                             converted=args.complete or args.converted)
    except (BundleError, UnknownNameError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"wrote {args.dir} ({sizes['selection']}): {sizes['wheels']} wheels ({sizes['wheels_mb']:.1f} MB), "
                  f"{sizes['weights']} weight and calibration files ({sizes['home_mb']:.1f} MB); install with "
                  f"{args.dir}/install.sh, see {args.dir}/README.md")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bundle", help="write wheels, weights and calibrations for an offline node that has torch")
    p.add_argument("dir", help="a new folder for the bundle")
    p.add_argument("--suites", help="bundle what these suites' targets and adversaries need to run (default: smoke, "
                                    "the GPU check's; smoke,quick with --complete)")
    p.add_argument("--targets", help="comma-separated targets instead of the suites' (user-supplied weights are "
                                     "never bundled)")
    p.add_argument("--perf", action=argparse.BooleanOptionalAction, default=True,
                   help=f"add the targets `bench perf` times by default ({PERF_TARGETS}), so that "
                        "scripts/gpu-check.sh runs from the bundle")
    p.add_argument("--complete", action="store_true",
                   help="a wheel of every requirement (installed with pip's dependency check), the calibrations of "
                        "every target: what conversions and every plug-in need, not only what the run imports")
    p.add_argument("--converted", action="store_true",
                   help="also the weight files converted from the originals (always with --complete), for a node "
                        "that cannot write the bundle's home/: without them the first run converts each once")
    p.add_argument("--extras", help="cloakbench extras to bundle as well, e.g. dlib")
    p.set_defaults(func=run)
