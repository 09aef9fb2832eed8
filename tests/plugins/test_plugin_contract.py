"""The plug-in contract: modules of methods/, attacks/ and targets/ import from the harness only ``bench.api``, and
never import another plug-in package. Every module found on disk is checked (imports inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_PACKAGES = ("methods", "attacks", "targets")
API = "bench.api"


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in ``source``; ``from bench import api`` counts
    as ``bench.api``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module == "bench":
                found += [(node.lineno, f"bench.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module or ""))
    return sorted(found)


def breaches(package: str, source: str) -> list[str]:
    """What a module of ``package`` imports against the contract, one line each."""
    out = []
    for line, module in imported_modules(source):
        top = module.split(".")[0]
        if module.startswith("."):
            out.append(f"line {line}: relative import {module} (import plug-in modules by their absolute name)")
        elif top == "bench" and module != API:
            out.append(f"line {line}: imports {module}; plug-ins take what they need from {API}")
        elif top in PLUGIN_PACKAGES and top != package:
            out.append(f"line {line}: imports {module}; {package}/ never imports {top}/ (use {API})")
    return out


def plugin_modules() -> list[Path]:
    return sorted(p for pkg in PLUGIN_PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_plugin_package_has_modules():
    counts = {pkg: sum(1 for p in plugin_modules() if p.relative_to(ROOT).parts[0] == pkg) for pkg in PLUGIN_PACKAGES}
    assert all(n > 5 for n in counts.values()), counts


@pytest.mark.parametrize("path", plugin_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_imports_only_the_api(path: Path):
    package = path.relative_to(ROOT).parts[0]
    found = breaches(package, path.read_text())
    assert not found, f"{path.relative_to(ROOT)} breaks the plug-in contract:\n" + "\n".join(found)


def test_the_check_catches_each_kind_of_breach():
    source = (
        "from bench.api import METHODS\n"
        "from bench import api\n"
        "import bench.run.provenance\n"
        "from bench import identity_bank\n"
        "def late():\n"
        "    from bench.data.faces import Aligner\n"
        "from targets.base import Target\n"
        "import attacks.jpeg\n"
        "from methods.base import Method\n"
        "from . import base\n"
    )
    found = breaches("methods", source)
    assert [f.split(":")[0] for f in found] == ["line 3", "line 4", "line 6", "line 7", "line 8", "line 10"], found


def test_the_api_exports_what_it_lists():
    import bench.api

    missing = [name for name in bench.api.__all__ if getattr(bench.api, name, None) is None]
    assert not missing
    with pytest.raises(AttributeError, match="plug-in API"):
        bench.api.Workspace  # noqa: B018
