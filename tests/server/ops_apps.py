"""Applications for the health endpoint and JSON log tests (served in a subprocess).

``app`` answers every HTTP path with ``app saw <path>`` (so a test can tell who answered), raises
on ``/boom``, and echoes one WebSocket message before closing. Importing this module registers
two readiness checks that pass unless a file named by an environment variable exists:
``OPS_NOT_READY_FILE`` (the check raises) and ``OPS_SLOW_FILE`` (the check never returns).
"""

from __future__ import annotations

import asyncio
import os

from switchboard.server.runtime.health import add_readiness_check


class AppFailure(Exception):
    pass


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text")})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["path"] == "/boom":
        raise AppFailure("the application failed on purpose")
    body = f"app saw {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _flag(name: str) -> bool:
    path = os.environ.get(name)
    return bool(path) and os.path.exists(path)


async def _flagged() -> None:
    if _flag("OPS_NOT_READY_FILE"):
        raise RuntimeError("the flag file says not ready")


async def _slow() -> None:
    if _flag("OPS_SLOW_FILE"):
        await asyncio.sleep(3600)


add_readiness_check("flag", _flagged)
add_readiness_check("slow", _slow)
