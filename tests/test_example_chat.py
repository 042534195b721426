"""End to end: the chat example under `python -m switchboard serve`, real HTTP and WebSockets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.example_server import serve_example

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "chat"


def _example_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",  # The suite's own settings are inherited.
        CHAT_DATABASE=str(tmp_path / "chat.sqlite3"),
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("chat")
    env = _example_env(tmp_path)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=EXAMPLE,
        env=env,
        check=True,
        timeout=60,
    )
    with serve_example(
        EXAMPLE, "chatsite.asgi:application", env, tmp_path / "server.log"
    ) as server:
        yield server.address


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_index_and_room_pages(chat_server):
    status, body = _get(f"http://{chat_server}/")
    assert status == 200
    assert "Switchboard chat" in body and 'id="room"' in body
    status, body = _get(f"http://{chat_server}/chat/lobby/")
    assert status == 200
    assert '<script id="room-name" type="application/json">"lobby"</script>' in body
    assert "/ws/chat/" in body
    status, _ = _get(f"http://{chat_server}/chat/not%20a%20room/")
    assert status == 404


async def _next(ws, kind: str) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if event.get("type", event.get("sb")) == kind:
            return event


async def _subscribe(ws, room: str, **extra) -> dict:
    await ws.send(json.dumps({"sb": "sub", "topic": f"chat_{room}", **extra}))
    return await _next(ws, "subscribed")


async def test_two_clients_in_a_room_both_receive_a_message(chat_server):
    origin = f"http://{chat_server}"
    room = f"ws://{chat_server}/ws/chat/lobby/"
    async with (
        connect(room, origin=origin) as alice,
        connect(room, origin=origin) as bob,
        connect(f"ws://{chat_server}/ws/chat/elsewhere/", origin=origin) as carol,
    ):
        alice_name = (await _next(alice, "welcome"))["username"]
        bob_name = (await _next(bob, "welcome"))["username"]
        await _next(carol, "welcome")
        assert alice_name.startswith("guest-") and alice_name != bob_name
        for client, name in ((alice, "lobby"), (bob, "lobby"), (carol, "elsewhere")):
            await _subscribe(client, name)

        await alice.send(json.dumps({"message": "hello, room"}))
        for client in (alice, bob):
            event = (await _next(client, "pub"))["data"]
            assert event["message"] == "hello, room"
            assert event["username"] == alice_name
            assert event["timestamp"].endswith("+00:00")

        await bob.send(json.dumps({"message": "  "}))
        assert "message" in (await _next(bob, "error"))["error"]

        # Another room hears nothing, and a socket may not subscribe to another room.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(carol.recv(), 0.3)
        await carol.send(json.dumps({"sb": "sub", "topic": "chat_lobby"}))
        assert (await _next(carol, "error"))["error"] == "subscribe refused"


async def test_history_on_join_recovery_and_who_is_online(chat_server):
    origin = f"http://{chat_server}"
    room = f"ws://{chat_server}/ws/chat/history/"
    async with connect(room, origin=origin) as alice:
        alice_name = (await _next(alice, "welcome"))["username"]
        await alice.send(json.dumps({"sb": "presence", "topic": "chat_history"}))
        assert list((await _next(alice, "presence_state"))["state"]) == [alice_name]
        await _subscribe(alice, "history")
        await alice.send(json.dumps({"message": "first"}))
        first = await _next(alice, "pub")
        async with connect(room, origin=origin) as bob:
            bob_name = (await _next(bob, "welcome"))["username"]
            diff = await _next(alice, "presence_diff")
            assert list(diff["joins"]) == [bob_name]
            assert diff["joins"][bob_name]["metas"][0]["status"] == "online"
            await _subscribe(bob, "history", history=50)
            assert (await _next(bob, "pub"))["data"]["message"] == "first"  # history on join
            for text in ("second", "third"):
                await bob.send(json.dumps({"message": text}))
        diff = await _next(alice, "presence_diff")
        assert list(diff["leaves"]) == [bob_name]
    # Alice comes back with her last offset: exactly what she missed.
    async with connect(room, origin=origin) as alice:
        await _next(alice, "welcome")
        position = {"epoch": first["epoch"], "offset": first["offset"]}
        assert (await _subscribe(alice, "history", **position))["recovered"] is True
        missed = [(await _next(alice, "pub"))["data"]["message"] for _ in range(2)]
        assert missed == ["second", "third"]


def test_the_browser_client_is_served(chat_server):
    status, body = _get(f"http://{chat_server}/static/switchboard/switchboard.js")
    assert status == 200 and "export class Switchboard" in body
    status, body = _get(f"http://{chat_server}/chat/lobby/")
    assert 'from "/static/switchboard/switchboard.js"' in body


async def test_foreign_origin_is_rejected(chat_server):
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"ws://{chat_server}/ws/chat/lobby/", origin="http://evil.example.com"):
            pass
    assert caught.value.response.status_code == 403
