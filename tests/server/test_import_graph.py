"""The modules of ``switchboard.server`` import without cycles, each imports on its own, and
none imports anything of ``switchboard`` outside the server (what it needs from above, such as
the metrics endpoint or the native Django HTTP path, is passed in as hooks).

A cycle makes the import order matter (a module half-initialised when its partner asks for a
name) and hides which module depends on which; importing every module alone in a fresh
interpreter catches a module that only works once another one has been imported first.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import switchboard.server

PACKAGE = "switchboard.server"
ROOT = Path(switchboard.server.__file__).parent


def _module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _is_type_checking_block(node: ast.AST) -> bool:
    # Imports under ``if TYPE_CHECKING:`` never run: annotations only.
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports, at the top or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in MODULES else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    found.discard(name)
    return {target for target in found if target in MODULES}


def import_graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path whose last node is its first, or None."""
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*trail, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_find_cycle_finds_cycles() -> None:
    # The checker itself: a cycle through three modules is reported, a diamond is not.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) is None


def test_parser_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    graph = import_graph()
    # The HTTP/1.1 side imports the WebSocket protocol inside a method: that edge must be seen.
    websocket = "switchboard.server.connections.websocket"
    assert any(
        websocket in targets
        for name, targets in graph.items()
        if name.startswith("switchboard.server.connections.http11")
    )
    assert "switchboard.server.connections.http11" in graph["switchboard.server.runtime.server"]


def _outside_imports(path: Path) -> set[str]:
    """The ``switchboard`` modules outside the server that the file at ``path`` imports."""
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            continue
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            names = []
        for name in names:
            if name.split(".")[0] == "switchboard" and not (
                name == PACKAGE or name.startswith(PACKAGE + ".")
            ):
                found.add(name)
        stack.extend(ast.iter_child_nodes(node))
    return found


def test_server_imports_nothing_of_switchboard_outside_it() -> None:
    outside = {name: _outside_imports(path) for name, path in MODULES.items()}
    assert {name: found for name, found in outside.items() if found} == {}


def test_server_package_has_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
