"""``POST ...&sb_transport=sse|poll&sb_session=TOKEN``: frames from the client to its
session's application, ``{"frames": ["text", ...]}`` (and ``"close": true`` to end it)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .hosts import SEND_WAIT, reach
from .http import TooLarge, read_body, respond
from .settings import TransportSettings

__all__ = ["parse_frames", "post_frames"]


class Malformed(ValueError):
    pass


def parse_frames(body: bytes) -> tuple[list[str | bytes], bool]:
    """The frames (text, or bytes sent as ``{"b": base64}``) and the close flag of a POST
    body; :class:`Malformed` with the reason otherwise."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Malformed('the body must be a JSON object {"frames": [...]}')
    raw = data.get("frames", [])
    close = data.get("close", False)
    if not isinstance(raw, list) or not isinstance(close, bool):
        raise Malformed('"frames" must be a list and "close" a boolean')
    frames: list[str | bytes] = []
    for frame in raw:
        if isinstance(frame, str):
            frames.append(frame)
        elif isinstance(frame, dict) and isinstance(frame.get("b"), str):
            try:
                frames.append(base64.b64decode(frame["b"], validate=True))
            except binascii.Error:
                raise Malformed("a binary frame is not valid base64") from None
        else:
            raise Malformed('each frame must be a string (or {"b": base64} for bytes)')
    return frames, close


async def post_frames(
    scope: dict[str, Any], receive: Any, send: Any, token: str, settings: TransportSettings
) -> None:
    try:
        body = await read_body(scope, receive, settings.max_post_bytes)
    except TooLarge:
        await respond(send, 413, {"error": "request body too large"})
        return
    except ConnectionError:
        return
    try:
        frames, close = parse_frames(body)
    except Malformed as exc:
        await respond(send, 400, {"error": str(exc)})
        return
    reached = await reach(token)
    if reached is None:
        await respond(send, 410, {"error": "unknown session"})
        return
    host, where, sid = reached
    if where == host.name:
        status, answer = host.send_local(sid, frames, close)
    else:
        # Bytes travel through the layer as they are (every layer's codec carries bytes).
        message = {"type": "sbt.send", "sid": sid, "frames": frames, "close": close}
        status, answer = await host.forward(where, message, SEND_WAIT)
    await respond(send, status, answer)
