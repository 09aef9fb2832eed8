"""The plug-in contract: modules of methods/, attacks/ and targets/ import from the harness only ``bench.api``, and
never import another plug-in package. Every module found on disk is checked (imports inside functions too).

They draw random numbers from a ``torch.Generator`` the run hands them (``bench.api.seeded_generator``); a library
that takes no generator (torchattacks) runs under ``bench.api.seeded``, which seeds torch's global RNG and restores
the caller's state after. A module that seeds the global RNG anywhere else (``torch.manual_seed``,
``torch.random.manual_seed``, ``torch.cuda.manual_seed_all``, ...) fails here too."""

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


# torch's global RNG

GLOBAL_RNG = {"torch", "torch.random", "torch.cuda", "torch.cuda.random"}
SEEDING = {"manual_seed", "manual_seed_all", "seed", "seed_all", "set_rng_state"}


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def is_seeded_block(node: ast.AST) -> bool:
    """``with seeded(...)`` (any spelling: ``seeded``, ``api.seeded``) or the definition of ``seeded`` itself."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name == "seeded"
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return any(isinstance(item.context_expr, ast.Call) and (dotted(item.context_expr.func) or "")
                   .split(".")[-1] == "seeded" for item in node.items)
    return False


def global_seeding(source: str) -> list[str]:
    """Calls that seed torch's global RNG outside a ``seeded`` block, one line each."""
    found = []

    def visit(node: ast.AST, scoped: bool) -> None:
        scoped = scoped or is_seeded_block(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SEEDING:
            owner = dotted(node.func.value)
            if owner in GLOBAL_RNG and not scoped:
                found.append(f"line {node.lineno}: {owner}.{node.func.attr}(...) seeds torch's global RNG; draw "
                             "from a torch.Generator (seeded_generator) or scope the library call with seeded")
        for child in ast.iter_child_nodes(node):
            visit(child, scoped)

    visit(ast.parse(source), False)
    return found


@pytest.mark.parametrize("path", plugin_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_never_seed_the_global_rng_unscoped(path: Path):
    found = global_seeding(path.read_text())
    assert not found, f"{path.relative_to(ROOT)}:\n" + "\n".join(found)


def test_the_check_sees_a_bare_global_seed():
    source = (
        "import torch\n"
        "from bench.api import seeded\n"
        "def fit(seed):\n"
        "    torch.manual_seed(seed)\n"
        "    torch.random.manual_seed(seed)\n"
        "    torch.cuda.manual_seed_all(seed)\n"
        "    g = torch.Generator().manual_seed(seed)\n"
        "    with seeded(seed, 'cpu'):\n"
        "        torch.manual_seed(seed + 1)\n"
        "    return torch.rand(3, generator=g)\n"
    )
    assert [f.split(":")[0] for f in global_seeding(source)] == ["line 4", "line 5", "line 6"]
