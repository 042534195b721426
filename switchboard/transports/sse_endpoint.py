"""``GET <websocket path>?...&sb_transport=sse``: a session whose frames go out on one
``text/event-stream`` response (see the package docstring for the events)."""

from __future__ import annotations

import asyncio
from typing import Any

from . import sse
from .hosts import current_host
from .http import handshake, send_refusal, wait_disconnect
from .scope import websocket_scope
from .session import ABNORMAL, CLOSED, Session
from .settings import TransportSettings

__all__ = ["open_stream"]

STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on, do not buffer the response
]


async def open_stream(
    scope: dict[str, Any], receive: Any, send: Any, app: Any, settings: TransportSettings
) -> None:
    host = await current_host()
    session = host.new_session("sse", websocket_scope(scope, "sse"), settings)
    session.start(app)
    # The GET has no body: the first receive() hands over its end, the next one waits for the
    # client to leave.
    gone = asyncio.ensure_future(wait_disconnect(receive))
    try:
        answer = await handshake(session, gone)
        if answer is not None:
            await send_refusal(send, answer)
            return
        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        first = sse.session_event(session.token, settings.heartbeat)
        await send({"type": "http.response.body", "body": first, "more_body": True})
        await _write(session, send, gone, settings.heartbeat)
    except OSError:  # the server's "client disconnected": the stream is lost
        pass
    finally:
        gone.cancel()
        session.lost(ABNORMAL)  # nothing if the session ended already


async def _write(session: Session, send: Any, gone: asyncio.Future[Any], heartbeat: float) -> None:
    """Frames to events as they come, a comment after ``heartbeat`` seconds of silence, until
    the application closes (``sb.close``, end of response) or the client leaves."""
    while True:
        frames, close = session.take()
        chunk = b"".join(sse.frame_event(frame) for frame in frames)
        if close is not None:
            chunk += sse.close_event(*close)
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": close is None})
        if close is not None:
            return
        if session.state is CLOSED:
            await send({"type": "http.response.body", "body": b""})
            return
        changed = session.changed.future()
        try:
            done, _ = await asyncio.wait(
                (changed, gone), timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            changed.cancel()
        if gone.done():
            session.lost(ABNORMAL)
            return
        if not done:
            await send({"type": "http.response.body", "body": sse.comment(), "more_body": True})
