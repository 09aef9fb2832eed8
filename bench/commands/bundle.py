"""``bench bundle DIR``: wheels, weights and calibrations for an offline node that has torch (bench/bundle.py)."""

from __future__ import annotations

from pathlib import Path

from bench.bundle import BundleError, write_bundle
from bench.commands._ui import wide_console
from bench.commands.weights import declared_specs
from bench.registry import UnknownNameError
from bench.resources import expand
from bench.suites import get_suite


def suite_targets(suites: list[str]) -> list[str]:
    """Targets and surrogates of the named suites ("*" expanded)."""
    from bench.registry import TARGETS

    names: list[str] = []
    for name in suites:
        suite = get_suite(name)
        for target in [*expand(suite.targets, TARGETS), *suite.surrogates]:
            if target not in names:
                names.append(target)
    return names


def run(args) -> int:
    console = wide_console()
    try:
        targets = args.targets.split(",") if args.targets else suite_targets(args.suites.split(","))
        specs = [spec for spec, _ in declared_specs([*targets, "lpips-alex"]) if spec.source != "path"]
        extras = tuple(e for e in (args.extras or "").split(",") if e)
        sizes = write_bundle(Path(args.dir), specs, targets, extras, log=lambda text: console.print(text, highlight=False))
    except (BundleError, UnknownNameError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"wrote {args.dir}: {sizes['wheels']} wheels ({sizes['wheels_mb']:.1f} MB), {sizes['weights']} "
                  f"weight and calibration files ({sizes['home_mb']:.1f} MB); see {args.dir}/README.md")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bundle", help="write wheels, weights and calibrations for an offline node that has torch")
    p.add_argument("dir", help="a new folder for the bundle")
    p.add_argument("--suites", default="smoke,quick", help="bundle the weights of these suites' targets")
    p.add_argument("--targets", help="comma-separated targets instead of the suites' (user-supplied weights are "
                                     "never bundled)")
    p.add_argument("--extras", help="cloakbench extras to bundle as well, e.g. dlib")
    p.set_defaults(func=run)
