"""A Channels project's consumers and routing run with only their imports changed."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import pytest

from switchboard.testing import WebsocketCommunicator

SOURCE = Path(__file__).parent / "channels_chat"
PACKAGE = "moved_channels_chat"


def load_moved_project() -> types.ModuleType:
    """Load channels_chat/*.py as a package with ``channels`` -> ``switchboard`` in imports."""
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    package = types.ModuleType(PACKAGE)
    package.__path__ = []  # type: ignore[attr-defined]
    sys.modules[PACKAGE] = package
    channels_imports = 0
    for module in ("consumers", "routing", "asgi"):
        source = (SOURCE / f"{module}.py").read_text()
        moved, count = re.subn(r"^(from|import) channels\b", r"\1 switchboard", source, flags=re.M)
        channels_imports += count
        spec = importlib.util.spec_from_loader(f"{PACKAGE}.{module}", loader=None)
        mod = importlib.util.module_from_spec(spec)
        mod.__package__ = PACKAGE
        sys.modules[spec.name] = mod
        exec(compile(moved, str(SOURCE / f"{module}.py"), "exec"), mod.__dict__)
        setattr(package, module, mod)
    assert channels_imports == 4, "the project must really be written against Channels"
    return package


@pytest.mark.parametrize("route", ["chat", "syncchat"])
async def test_two_members_of_a_room_both_receive_every_message(route: str) -> None:
    app = load_moved_project().asgi.application
    headers = [(b"origin", b"http://localhost")]
    alice = WebsocketCommunicator(app, f"/ws/{route}/lobby/", headers=headers)
    bob = WebsocketCommunicator(app, f"/ws/{route}/lobby/", headers=headers)
    elsewhere = WebsocketCommunicator(app, f"/ws/{route}/kitchen/", headers=headers)
    for member in (alice, bob, elsewhere):
        connected, _ = await member.connect(timeout=3)
        assert connected
    await alice.send_to(text_data=json.dumps({"message": "hello room"}))
    for member in (alice, bob):
        assert json.loads(await member.receive_from(timeout=3)) == {"message": "hello room"}
    assert await elsewhere.receive_nothing(timeout=0.2)
    for member in (alice, bob, elsewhere):
        await member.disconnect()


async def test_foreign_origin_is_refused_before_accept() -> None:
    app = load_moved_project().asgi.application
    stranger = WebsocketCommunicator(
        app, "/ws/chat/lobby/", headers=[(b"origin", b"http://evil.example.org")]
    )
    connected, _ = await stranger.connect(timeout=3)
    assert not connected
