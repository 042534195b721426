"""Long-polling: ``POST ...&sb_transport=poll`` opens a session, ``GET
...&sb_transport=poll&sb_session=TOKEN&sb_ack=N`` waits for its frames."""

from __future__ import annotations

import asyncio
from typing import Any

from .hosts import POLL_MARGIN, current_host, reach
from .http import TooLarge, handshake, read_body, respond, send_refusal, wait_disconnect
from .scope import websocket_scope
from .settings import TransportSettings

__all__ = ["open_poll", "poll"]


async def open_poll(
    scope: dict[str, Any], receive: Any, send: Any, app: Any, settings: TransportSettings
) -> None:
    try:
        await read_body(scope, receive, settings.max_post_bytes)  # empty, or ignored
    except TooLarge:
        await respond(send, 413, {"error": "request body too large"})
        return
    except ConnectionError:
        return
    host = await current_host()
    session = host.new_session("poll", websocket_scope(scope, "poll"), settings)
    session.start(app)
    gone = asyncio.ensure_future(wait_disconnect(receive))
    try:
        answer = await handshake(session, gone)
    except ConnectionError:
        return
    finally:
        gone.cancel()
    if answer is not None:
        await send_refusal(send, answer)
        return
    session.arm_idle()
    timeout = settings.poll_timeout
    body = {"session": session.token, "transport": "poll", "timeout": _number(timeout)}
    try:
        await respond(send, 200, body)
    except OSError:
        pass  # the client left: no poll will come, and the idle timer ends the session


async def poll(
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    token: str,
    ack: int | None,
    settings: TransportSettings,
) -> None:
    if ack is None or ack < 0:
        await respond(send, 400, {"error": "sb_ack must be a whole number"})
        return
    reached = await reach(token)
    if reached is None:
        await respond(send, 410, {"error": "unknown session"})
        return
    host, where, sid = reached
    if where == host.name:
        waiting = host.poll_local(sid, ack, settings.poll_timeout)
    else:
        message = {"type": "sbt.poll", "sid": sid, "ack": ack}
        waiting = host.forward(where, message, settings.poll_timeout + POLL_MARGIN)
    answer = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(wait_disconnect(receive))
    try:
        await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not answer.done():
        # The client left while its poll was held: stop holding it now (the session's idle
        # time starts); the frames stay unacknowledged for the client's next poll.
        answer.cancel()
        return
    status, body = answer.result()
    try:
        await respond(send, status, body)
    except OSError:
        pass  # lost: the next poll (same ack) gets these frames again


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
