"""The gateway's protocol core stays sans-I/O: what it imports is checked, so I/O arrives only
in the modules around it (the architecture test checks the tiers; this checks the narrower
rule)."""

from __future__ import annotations

import ast
from pathlib import Path

import switchboard.gateway.protocol

PACKAGE = Path(switchboard.gateway.protocol.__file__).parent
# Of Switchboard: the channel layers' contract and the shared leaves, nothing else.
ALLOWED_OWN = (
    "switchboard.gateway.protocol",
    "switchboard.layers",
    "switchboard.exceptions",
    "switchboard.statetable",
)
# Nothing that does I/O, waits or keeps time, and no Django.
FORBIDDEN = {"asyncio", "django", "socket", "selectors", "threading", "time", "subprocess"}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_gateway_core_imports_no_io_and_little_of_switchboard() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in sorted(imports(path)):
            top = name.split(".")[0]
            if top == "switchboard" and not name.startswith(ALLOWED_OWN):
                wrong.append(f"{path.name} imports {name}")
            if top in FORBIDDEN:
                wrong.append(f"{path.name} imports {name}")
    assert wrong == []
