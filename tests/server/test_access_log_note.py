"""The access log's note extension: an application puts a ``str`` under ``"note"`` in
``scope["extensions"]["switchboard.access_log"]`` and its connection's lines end with
`` [<note>]`` (a ``note`` field in JSON), through a real ``switchboard serve`` subprocess.

The application is this module's :func:`app`: on connect it says whether the extension is
there, sets the note given in the query (if any) before accepting, then echoes; a message
``note:TEXT`` sets the note to TEXT on the way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from websockets.sync.client import connect

from tests.server.serve_process import Serving, free_port

APP = "tests.server.test_access_log_note:app"
EXTENSION = "switchboard.access_log"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    note = scope["extensions"].get(EXTENSION)
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    await receive()  # websocket.connect
    if note is not None and "note" in query:
        note["note"] = query["note"]
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": f"extension:{note is not None}"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or ""
        if text.startswith("note:") and note is not None:
            note["note"] = text[len("note:") :]
        await send({"type": "websocket.send", "text": text})


def _talk(port: int, path: str, *messages: str) -> str:
    """Connect, exchange ``messages``, close (1000 by client); the greeting."""
    with connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10) as ws:
        greeting = ws.recv(timeout=10)
        for text in messages:
            ws.send(text)
            assert ws.recv(timeout=10) == text
    assert isinstance(greeting, str)
    return greeting


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Serving] = []

    def start(*options: str) -> tuple[Serving, int]:
        port = free_port()
        server = Serving(tmp_path / f"err{len(started)}.log", APP, "--port", str(port), *options)
        started.append(server)
        server.wait_for("Listening on")
        return server, port

    yield start
    for server in started:
        server.close()


def test_a_note_ends_the_lines_written_after_it_was_set(serve: Any) -> None:
    server, port = serve()
    # Set before the accept: on the handshake line too.
    assert _talk(port, "/ws/a?note=first") == "extension:True"
    # Set while open: on the close line only.
    assert _talk(port, "/ws/b", "hello", "note:worker-7 (host:123)", "again") == "extension:True"
    # Never set: the lines as they always were.
    assert _talk(port, "/ws/c", "hello") == "extension:True"
    server.wait_for('"WEBSOCKET /ws/c" closed')
    log = server.stderr
    ms = r"\d+\.\dms"
    assert re.search(rf'"WEBSOCKET /ws/a\?note=first HTTP/1\.1" 101 - {ms} \[first\]$', log, re.M)
    assert re.search(
        r'"WEBSOCKET /ws/a\?note=first" closed 1000 by client after \d+\.\ds, 0 in / 1 out '
        r"\[first\]$",
        log,
        re.M,
    ), log
    assert re.search(rf'"WEBSOCKET /ws/b HTTP/1\.1" 101 - {ms}$', log, re.M), log
    assert re.search(
        r'"WEBSOCKET /ws/b" closed 1000 by client after \d+\.\ds, 3 in / 4 out '
        r"\[worker-7 \(host:123\)\]$",
        log,
        re.M,
    ), log
    assert re.search(rf'"WEBSOCKET /ws/c HTTP/1\.1" 101 - {ms}$', log, re.M), log
    assert re.search(
        r'"WEBSOCKET /ws/c" closed 1000 by client after \d+\.\ds, 1 in / 2 out$', log, re.M
    ), log


def test_a_note_cannot_break_the_line(serve: Any) -> None:
    server, port = serve()
    _talk(port, "/ws/odd", "note:two\nlines\x1b[31m")
    log = server.wait_for('"WEBSOCKET /ws/odd" closed')
    closing = [line for line in log.splitlines() if '"WEBSOCKET /ws/odd" closed' in line]
    assert len(closing) == 1 and closing[0].endswith(r"[two\nlines\x1b[31m]"), log
    assert "\x1b" not in log


def test_json_lines_carry_the_note_as_a_field(serve: Any) -> None:
    server, port = serve("--log-format", "json")
    _talk(port, "/ws/noted?note=w1", "x")
    _talk(port, "/ws/plain", "x")
    server.wait_for('"WEBSOCKET /ws/plain\\" closed')
    records = [json.loads(line) for line in server.stderr.splitlines()]
    access = {
        (r["path"], r["event"]): r for r in records if r["logger"] == "switchboard.server.access"
    }
    for event in ("websocket.handshake", "websocket.close"):
        noted = access[("/ws/noted", event)]
        assert noted["note"] == "w1" and noted["message"].endswith(" [w1]"), noted
        assert "note" not in access[("/ws/plain", event)]


def test_without_the_access_log_the_extension_is_not_offered(serve: Any) -> None:
    server, port = serve("--no-access-log")
    assert _talk(port, "/ws/a?note=first", "x") == "extension:False"
    assert "WEBSOCKET" not in server.stderr
