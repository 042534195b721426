"""The peer of bench/transports_drops.py: python-socketio, the way its users deploy it.

Server (``application``, served by uvicorn): a ``socketio.AsyncServer`` (ASGI mode) that puts
every connection into the room ``feed``; ``POST /start?count=N&rate=R`` starts emitting
``pub`` events ``{"n": 0..N-1}`` to that room, R per second; ``GET /status`` answers
``{"emitted": n, "done": bool}``. Socket.IO has no recovery of what was emitted while a client
was away (its Node server has "connection state recovery"; python-socketio does not), so a
drop loses what was emitted during it.

Clients (:func:`run_clients`): ``socketio.AsyncClient`` with its default reconnection (1 s
first delay, up to 5 s, randomized), default transports (long-polling upgraded to WebSocket).
Only the very first connect is retried here, since a client that never connected does not
reconnect on its own.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any
from urllib.parse import parse_qs

import socketio

ROOM = "feed"

sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
_state: dict[str, Any] = {"emitted": 0, "done": False, "task": None}


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    await sio.enter_room(sid, ROOM)


async def _emit(count: int, rate: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(count):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await sio.emit("pub", {"n": n}, room=ROOM)
        _state["emitted"] = n + 1
    _state["done"] = True


async def control(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/start`` and ``/status`` beside Socket.IO's own path."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    query = parse_qs(scope.get("query_string", b"").decode())
    if scope["path"] == "/start" and _state["task"] is None:
        count, rate = int(query["count"][0]), float(query["rate"][0])
        _state["task"] = asyncio.get_running_loop().create_task(_emit(count, rate))
    body = json.dumps({"emitted": _state["emitted"], "done": _state["done"]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


application = socketio.ASGIApp(sio, other_asgi_app=control)


class PeerTally:
    """What one Socket.IO client saw: the ``n`` of every ``pub`` event, and its connects."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.connects = 0
        self.connected = asyncio.Event()
        self.last = -1
        self.reached = asyncio.Event()

    def summary(self) -> dict[str, Any]:
        return {"seen": self.seen, "connects": self.connects}


async def peer_client(url: str, tally: PeerTally) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=True)

    @client.event
    async def connect() -> None:
        tally.connects += 1
        tally.connected.set()

    @client.on("pub")
    async def pub(data: dict[str, Any]) -> None:
        tally.seen.append(data["n"])
        if data["n"] >= tally.last >= 0:
            tally.reached.set()

    while True:  # the first connect only; afterwards its own reconnection takes over
        try:
            await client.connect(url, wait_timeout=5)
            return client
        except (socketio.exceptions.ConnectionError, OSError):
            await asyncio.sleep(random.uniform(0.5, 2.0))
