"""The rooms of bench/ import only downwards: core < models < data < measures < registry < run < perf, report <
the surface (the plug-in API, the Python API, the CLI and its commands). A module that reaches up a floor fails,
and so does a module over the line cap (one that has grown past one job)."""

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
# A module longer than this holds more than one job: split it by what it does (docs/harness.md maps the rooms).
MAX_LINES = 300
LEVEL = {"core": 0, "models": 1, "data": 2, "measures": 3, "registry": 4, "run": 5, "perf": 6, "report": 6,
         "api": 7, "library": 7, "cli": 7, "commands": 7, "__init__": 7}


def room_of(module: str) -> str:
    """``bench.run.tasks`` -> ``run``; ``bench.api`` -> ``api``; a bench/ path the same way."""
    return module.split(".")[1] if module.count(".") else "__init__"


def bench_imports(path: Path) -> list[tuple[int, str]]:
    """Every bench module a file imports (inside functions too), as (line, dotted name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            if node.module == "bench":
                found += [(node.lineno, f"bench.{a.name}") for a in node.names if a.name != "__version__"]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "bench" and "." in a.name]
    return found


def modules():
    return sorted(p for p in BENCH.rglob("*.py") if "embedded" not in p.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.relative_to(BENCH).as_posix())
def test_rooms_import_only_downwards(path):
    rel = path.relative_to(BENCH)
    here = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.stem != "__init__" else "__init__"
    assert here in LEVEL, f"bench/{rel} is in no room: add it to one (or to LEVEL)"
    surface = LEVEL["api"]  # the surface's modules may use each other; rooms below never use a peer
    wrong = [f"line {line}: {name} ({room_of(name)} is not below {here})" for line, name in bench_imports(path)
             if room_of(name) != here and LEVEL.get(room_of(name), 99) >= LEVEL[here] and LEVEL[here] < surface]
    assert not wrong, f"bench/{rel} reaches up: " + "; ".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from bench.run.store import RunStore\n")
    assert bench_imports(bad) == [(2, "bench.run.store")]
    assert LEVEL[room_of("bench.run.store")] > LEVEL["data"]


def test_no_module_is_over_the_line_cap():
    sizes = {p.relative_to(BENCH).as_posix(): len(p.read_text().splitlines()) for p in modules()}
    over = sorted((n, name) for name, n in sizes.items() if n > MAX_LINES)
    assert not over, (f"{len(over)} bench/ module(s) over {MAX_LINES} lines; split each by what it does: "
                      + ", ".join(f"bench/{name} ({n} lines)" for n, name in reversed(over)))
