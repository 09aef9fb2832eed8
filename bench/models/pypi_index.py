"""Files of a PyPI release read straight from the package index, so that nothing is built or run to get them.

``pip download`` of a source distribution prepares its metadata (runs its ``setup.py``) before a caller could
check anything; here a file is fetched by name from the index's release listing (the JSON form of the simple API,
PEP 691), its SHA-256 compared with the one the caller pinned, and only then handed back to be unpacked as an
archive. The index is pip's own (``PIP_INDEX_URL`` or pip's configured ``index-url``, else PyPI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from bench.core.checksums import file_sha256

PYPI_SIMPLE = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class IndexFileError(OSError):
    """The index cannot be read, lists no such file, or served a file whose SHA-256 is not the pinned one."""


def index_url() -> str:
    """The package index pip uses here: ``PIP_INDEX_URL``, else pip's configured ``index-url``, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].rstrip("/")
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".index-url") and not key.endswith("extra-index-url"):
            return value.strip().strip("'\"").rstrip("/")
    return PYPI_SIMPLE


def normalise(name: str) -> str:
    """PEP 503's normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release_files(package: str, index: str | None = None) -> list[dict]:
    """Every file the index lists for ``package``: ``filename``, absolute ``url`` and ``sha256`` (None if the
    index gives none)."""
    base = f"{index or index_url()}/{normalise(package)}/"
    request = urllib.request.Request(base, headers={"Accept": SIMPLE_JSON})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            listing = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"cannot read the index listing {base} ({exc})") from exc
    return [{"filename": f["filename"], "url": urllib.parse.urljoin(base, f["url"]),
             "sha256": f.get("hashes", {}).get("sha256")} for f in listing.get("files", [])]


def fetch_verified(package: str, filename: str, sha256: str, dest: Path) -> Path:
    """Download ``filename`` of ``package`` from the index into folder ``dest`` and return its path, only if its
    SHA-256 is ``sha256``; a file that differs is deleted and :class:`IndexFileError` raised. Nothing in it runs."""
    entry = next((f for f in release_files(package) if f["filename"] == filename), None)
    if entry is None:
        raise IndexFileError(f"the index {index_url()} lists no {filename} for {package}")
    if entry["sha256"] and entry["sha256"] != sha256:
        raise IndexFileError(f"the index lists {filename} with SHA-256 {entry['sha256']}, not the pinned {sha256}; "
                          "refusing it")
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / filename
    part = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(entry["url"], timeout=120) as resp, open(part, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise IndexFileError(f"download of {filename} failed ({exc})") from exc
    got = file_sha256(part)
    if got != sha256:
        part.unlink()
        raise IndexFileError(f"{filename} from {entry['url']} has SHA-256 {got}, not the pinned {sha256}; refusing it")
    os.replace(part, path)
    return path


__all__ = ["IndexFileError", "fetch_verified", "index_url", "normalise", "release_files"]
