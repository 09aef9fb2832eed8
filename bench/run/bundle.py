"""``bench bundle DIR``: what an air-gapped node that already has torch and torchvision needs to run cloakbench.

DIR/
- ``wheels/``: cloakbench's wheel (built from this checkout) and a wheel of every package it needs, at the
  versions installed here, for this Python and platform, except torch, torchvision and what they bring
  (numpy, pillow, typing-extensions, CUDA libraries ...): a node with torch has those. A run-only bundle (the
  default) leaves out the core requirements that only plug-ins import (``PLUGIN_PACKAGES``) unless a chosen
  target or adversary names one in its ``run_packages``, and what only they bring; a complete one has them all;
- ``home/``: a ``BENCH_HOME`` with the verified weight files of the chosen targets and of the LPIPS metric
  (with the forms converted from them in a complete bundle, or with ``--converted``: otherwise the node converts
  each once on first use, with packages the run imports anyway) and the calibrations of the chosen targets (of
  all, in a complete bundle);
- ``install.sh``: checks every file against ``MANIFEST.json`` (and that no unlisted wheel lies in ``wheels/``),
  then installs the wheels with no network (``--no-deps`` for a run-only bundle, whose wheels are fewer than
  cloakbench's metadata asks for); ``README.md``: how to install and run; ``MANIFEST.json``: every file with its
  size and SHA-256.

Making a bundle needs the network: ``pip download`` fetches wheels only (a release with no wheel is refused, never
built), each pinned to the SHA-256 the package index lists for it (``--require-hashes``). Using it does not.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from bench.core.paths import bench_home
from bench.models.weights import WeightSpec, cache_dir, sha256_of

# PLUGIN_PACKAGES is named here too: plug-ins' ``run_packages`` refer to it as ``bench.run.bundle.PLUGIN_PACKAGES``
from bench.run.bundle_wheels import PLUGIN_PACKAGES, BundleError, build_wheels, left_out, normalise


def weight_files(specs: Iterable[WeightSpec], converted: bool = True) -> list[Path]:
    """The verified files of ``specs`` in the cache and, if ``converted``, the files converted from them
    (``derived``: named after the original's SHA-256); a spec whose file is missing or does not verify is an
    error. Without the converted files a node converts once on first use, with the run's own packages."""
    files = []
    for spec in specs:
        original = cache_dir(spec) / spec.filename
        if not original.is_file() or sha256_of(original) != spec.sha256:
            raise BundleError(f"weights '{spec.name}' are not fetched and verified in {cache_dir(spec)}: run "
                              f"`bench weights fetch {spec.name}` first")
        files.append(original)
        if converted:
            files += sorted(p for p in cache_dir(spec).glob(f"{spec.sha256[:12]}-*") if not p.name.endswith(".part"))
    return files


def copy_home(home: Path, specs: Iterable[WeightSpec], calibrated: Iterable[str] | None = None,
              converted: bool = True) -> list[Path]:
    """Weights (and, if ``converted``, their conversions) and the calibrations into a new BENCH_HOME at ``home``:
    those of the ``calibrated`` targets, or all when None."""
    source = bench_home()
    copied = []
    for path in weight_files(specs, converted):
        dst = home / path.relative_to(source)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst)
        copied.append(dst)
    calibration = source / "calibration"
    if calibration.is_dir():
        names = None if calibrated is None else set(calibrated)
        for path in sorted(p for p in calibration.rglob("*") if p.is_file()):
            target = path.relative_to(calibration).parts[0].split(".json")[0]
            if names is None or target in names:
                dst = home / path.relative_to(source)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dst)
                copied.append(dst)
    return copied


# install.sh's first step: every file against its SHA-256 in MANIFEST.json, and no wheel that the manifest does not
# list (the install takes wheels/*.whl); any difference stops the install before pip runs.
VERIFY = """python - "$here" <<'CHECK'
import hashlib, json, sys
from pathlib import Path
here = Path(sys.argv[1])
files = json.loads((here / "MANIFEST.json").read_text())["files"]
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
bad = [rel for rel, entry in files.items() if not (here / rel).is_file() or sha256(here / rel) != entry["sha256"]]
bad += [f"wheels/{p.name} (not in MANIFEST.json)" for p in sorted((here / "wheels").glob("*.whl"))
        if f"wheels/{p.name}" not in files]
if bad:
    sys.exit(f"bundle check failed, nothing installed: {len(bad)} file(s) missing or changed: {', '.join(bad[:5])}")
print(f"bundle check: {len(files)} files match MANIFEST.json")
CHECK
"""
INSTALL = {
    "run": 'python -m pip install --no-index --no-deps "$here"/wheels/*.whl',
    "complete": 'python -m pip install --no-index --find-links "$here/wheels" cloakbench',
}
SELECTIONS = {
    "run": "Run-only: the wheels that `bench run` and `bench perf` import for the targets and adversaries it was made "
           "for. cloakbench's metadata asks for more (the packages that fetch and convert weights, and those of "
           "other plug-ins), so the wheels install with `--no-deps`, and `pip check` lists those as missing. "
           "`bench bundle --complete` makes a bundle with every requirement.",
    "complete": "Complete: a wheel of every requirement of cloakbench, installed with pip's own dependency check.",
}

README = """# cloakbench bundle

Made by `bench bundle` on {python} ({platform}). For a node with the same Python and platform that already has
torch and torchvision (and so numpy and pillow) and no network. {selection}

Install, with no index (pip takes everything from `wheels/`): `sh {dir}/install.sh`, which runs

    {install}

Run, with the bundled weights and calibrations:

    BENCH_HOME={dir}/home bench run --suite {suite} --device cuda

The GPU check (`bench perf` on the GPU, then the smoke suite on the GPU and on the CPU, whose PSR must agree):

    scripts/gpu-check.sh {dir}          # from a checkout; or see the script: three bench commands and a compare

Contents: {wheels} wheels ({wheel_mb:.1f} MB): {packages}. Weights for {targets} ({home_mb:.1f} MB){conversions}.
"""
NOT_CONVERTED = ("; without the files converted from them: the first run converts each once into `home/` (seconds, "
                 "with the bundled packages), so `home/` must be writable")


def write_bundle(out: Path, specs: list[WeightSpec], targets: list[str], extras: tuple[str, ...] = (),
                 log: Callable[[str], None] = print, plugin_needs: Iterable[str] | None = None,
                 suite: str = "smoke", converted: bool = True) -> dict:
    """The bundle in ``out``: run-only for the plug-ins whose ``run_packages`` are ``plugin_needs``, or complete
    when that is None; with the converted weight files or (not ``converted``) without."""
    import platform

    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty; choose a new folder")
    kind = "complete" if plugin_needs is None else "run"
    wheels = out / "wheels"
    packages = build_wheels(wheels, extras, log, plugin_needs)
    home_files = copy_home(out / "home", specs, None if kind == "complete" else targets, converted)
    wheel_files = sorted(wheels.glob("*.whl"))
    missing = [n for n in packages if not any(normalise(w.name.split("-")[0]) == n for w in wheel_files)]
    if missing:
        raise BundleError(f"no wheel for {missing} in {wheels}")
    wheel_mb = sum(p.stat().st_size for p in wheel_files) / 2**20
    home_mb = sum(p.stat().st_size for p in home_files) / 2**20
    (out / "install.sh").write_text("#!/bin/sh\n# Installs this bundle's wheels with no network (see README.md), once "
                                    "every file matches MANIFEST.json.\n"
                                    'set -e\nhere=$(cd "$(dirname "$0")" && pwd)\n' + VERIFY + INSTALL[kind] + "\n")
    (out / "README.md").write_text(README.format(
        python=platform.python_version(), platform=platform.platform(), dir=out.resolve(), wheels=len(wheel_files),
        selection=SELECTIONS[kind], install=INSTALL[kind].replace("$here", str(out.resolve())), suite=suite,
        wheel_mb=wheel_mb, packages=", ".join(f"{n} {v}" for n, v in sorted(packages.items())),
        targets=", ".join(targets), home_mb=home_mb, conversions="" if converted else NOT_CONVERTED))
    manifest = {"python": platform.python_version(), "platform": platform.platform(), "selection": kind,
                "converted": converted, "extras": list(extras), "targets": targets, "packages": packages,
                "left_out": sorted(left_out(plugin_needs)),
                "files": {str(p.relative_to(out)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
                          for p in [*wheel_files, *home_files]}}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    return {"wheels_mb": wheel_mb, "home_mb": home_mb, "wheels": len(wheel_files), "weights": len(home_files),
            "selection": kind}


__all__ = ["BundleError", "PLUGIN_PACKAGES", "copy_home", "weight_files", "write_bundle"]
