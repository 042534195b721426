"""The package's layout rules, checked over every module of ``switchboard``.

``docs/architecture.md`` draws the picture; this file is what keeps it true:

* each top-level part sits on a tier, and imports only parts on lower tiers (or, where a tier
  says so, its neighbours on the same tier): the server knows nothing above it, the channel
  layers know neither Django nor the server;
* no import cycles between modules, counting imports made inside functions (a lazy import
  still ties two modules together), not counting ``if TYPE_CHECKING:`` blocks (never run);
* every module imports on its own in a fresh interpreter (no module works only because
  another one happened to be imported first);
* no module over 500 lines and no class over 400.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import switchboard

PACKAGE = "switchboard"
ROOT = Path(switchboard.__file__).parent
REPO = ROOT.parent

MAX_FILE_LINES = 500
MAX_CLASS_LINES = 400


@dataclass(frozen=True)
class Tier:
    name: str
    parts: frozenset[str]
    # May parts of this tier import each other? (Never in cycles: that is checked apart.)
    siblings: bool = False


# Lowest first. A part is the first name under ``switchboard`` (``server`` for
# ``switchboard.server.asgi.http_cycle``, ``consumer`` for ``switchboard.consumer``);
# ``switchboard`` itself is the package's own ``__init__``, where the parts are joined.
TIERS = (
    Tier("shared leaves", frozenset({"exceptions", "statetable"})),
    # The two engines: neither knows the other, nor Django (see test_engines_import_no_django).
    Tier("engines", frozenset({"server", "layers"})),
    # Django glue and metrics: read the engines, hook into them.
    Tier("glue", frozenset({"integration", "metrics"})),
    # Django-side features with Channels' names, and Switchboard's own.
    Tier(
        "features",
        frozenset(
            {
                "auth",
                "binding",
                "channel",
                "classic",
                "consumer",
                "db",
                "dispatch",
                "gateway",
                "generic",
                "message",
                "middleware",
                "realtime",
                "routing",
                "security",
                "sessions",
                "streams",
                "tasks",
                "templatetags",
                "transports",
                "worker",
            }
        ),
        siblings=True,
    ),
    # Entry points: what a user or a command starts from.
    Tier(
        "entry points",
        frozenset({"testing", "management", "apps", "cli", "asgi", "__main__", PACKAGE}),
        siblings=True,
    ),
)
ENGINES = ("server", "layers")


def _module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def part_of(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def tier_of(part: str) -> int:
    for index, tier in enumerate(TIERS):
        if part in tier.parts:
            return index
    raise LookupError(part)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_names(name: str, path: Path) -> set[str]:
    """Every module name ``name`` imports (any package), at the top or inside functions."""
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
    return found


def import_graph() -> dict[str, set[str]]:
    return {
        name: {target for target in imported_names(name, path) if target in MODULES}
        for name, path in MODULES.items()
    }


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


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes against the tiers, as ``"a -> b (why)"``."""
    wrong = []
    for source, targets in sorted(graph.items()):
        src_part = part_of(source)
        src_tier = tier_of(src_part)
        for target in sorted(targets):
            dst_part = part_of(target)
            if dst_part == src_part:
                continue
            dst_tier = tier_of(dst_part)
            if dst_tier < src_tier:
                continue
            if dst_tier == src_tier and TIERS[src_tier].siblings:
                continue
            wrong.append(
                f"{source} -> {target} ({src_part!r} on tier {TIERS[src_tier].name!r} may not "
                f"import {dst_part!r} on tier {TIERS[dst_tier].name!r})"
            )
    return wrong


def test_every_part_is_on_a_tier() -> None:
    # A new top-level module or package must be placed in TIERS (and in the picture).
    unplaced = set()
    for module in MODULES:
        try:
            tier_of(part_of(module))
        except LookupError:
            unplaced.add(part_of(module))
    assert not unplaced, f"place these parts in TIERS and docs/architecture.md: {unplaced}"


def test_imports_follow_the_tiers() -> None:
    assert forbidden_imports(import_graph()) == []


def test_engines_import_no_django() -> None:
    found = []
    for module, path in MODULES.items():
        if part_of(module) in ENGINES:
            django = {n for n in imported_names(module, path) if n.split(".")[0] == "django"}
            found.extend(f"{module} imports {name}" for name in sorted(django))
    assert found == []


def test_package_has_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_the_checks_can_fail() -> None:
    # The checker itself: a cycle through three modules is reported, a diamond is not...
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) is None
    # ...the server reaching up, or the layers reaching the server, is refused...
    graph = {
        "switchboard.server.x": {"switchboard.integration.settings"},
        "switchboard.layers.y": {"switchboard.server.x"},
        "switchboard.routing": {"switchboard.consumer"},
    }
    wrong = forbidden_imports(graph)
    assert [line.split(" (")[0] for line in wrong] == [
        "switchboard.layers.y -> switchboard.server.x",
        "switchboard.server.x -> switchboard.integration.settings",
    ]
    # ...and the parser sees imports inside functions, skipping TYPE_CHECKING blocks.
    sample = ROOT / "server" / "__init__.py"
    assert imported_names("switchboard.server", sample)  # it re-exports Config and friends
    lazy = ast.parse("def f():\n    from switchboard import layers\nif TYPE_CHECKING:\n import x\n")
    names = {a.name for n in ast.walk(lazy) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert names == {"layers"}


def test_sizes() -> None:
    too_long = []
    for module, path in MODULES.items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_FILE_LINES:
            too_long.append(f"{module}: {lines} lines (most {MAX_FILE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_long.append(f"{module}.{node.name}: {size} lines (most {MAX_CLASS_LINES})")
    assert too_long == []


def _import_alone(module: str) -> str | None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.sites.default.settings"}
    code = f"import django; django.setup(); import {module}"
    if part_of(module) in ENGINES:
        code = f"import {module}"  # the engines must import without Django set up
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    return None if result.returncode == 0 else f"{module}:\n{result.stderr}"


def test_every_module_imports_alone() -> None:
    # One fresh interpreter per module, a few at a time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [f for f in pool.map(_import_alone, sorted(MODULES)) if f]
    assert failures == []
