"""Fallback transports: a WebSocket session carried over plain HTTP, for networks where
WebSocket does not get through (some proxies, corporate middleboxes).

Nothing changes in the application: a transport session runs the project's own
``"websocket"`` application (the one ``ProtocolTypeRouter`` holds, with its middleware and
origin validator) with a websocket scope built from the HTTP request. ``ProtocolTypeRouter``
hands it an HTTP request whose query string has ``sb_transport=sse`` or ``sb_transport=poll``
(when that transport is enabled), at the WebSocket route's own path:
``ws://host/ws/chat/?x=1`` becomes ``http://host/ws/chat/?x=1&sb_transport=sse``.

The scope is the request's (path, headers, client, query string without the ``sb_*``
parameters, ``ws``/``wss`` scheme) plus ``scope["transport"]`` (``"sse"`` or ``"poll"``).
A GET without ``Origin`` (browsers send none on a same-origin EventSource) whose
``Sec-Fetch-Site`` is absent or ``same-origin`` gets ``Origin: <scheme>://<Host>``, so
``AllowedHostsOriginValidator`` judges it as it judges a WebSocket. Request headers are copied,
``Last-Event-ID`` included.

Wire protocol
-------------

Server-sent events, ``GET <path>?...&sb_transport=sse``:
    Accepted: ``200 text/event-stream``; the first event is ``event: sb.session`` with
    ``data: {"session": TOKEN, "transport": "sse", "heartbeat": 15}``. Each text frame the
    application sends is one ``message`` event (a line break in the text starts another
    ``data:`` line); a bytes frame is ``event: sb.binary`` with base64 data. A comment line
    ``: hb`` follows every ``heartbeat`` seconds of silence. When the application closes:
    ``event: sb.close`` / ``data: {"code": C, "reason": R}`` and the response ends. Refused
    before accept: ``403`` (or the application's own denial response); no route: ``404``.
    When the client drops the stream the application gets ``websocket.disconnect`` code 1006
    and the session is over: a client reconnects with a new stream.

Long-polling:
    ``POST <path>?...&sb_transport=poll`` (empty body) opens a session: ``200 {"session":
    TOKEN, "transport": "poll", "timeout": 25}`` (refusals as above). ``GET
    <path>?sb_transport=poll&sb_session=TOKEN&sb_ack=N`` is held up to ``timeout`` seconds
    until frames exist, then answered ``200 {"seq": S, "frames": [...]}``: the frames are
    numbered ``S - len + 1`` to ``S``, text frames are strings, bytes ones ``{"b": base64}``.
    ``sb_ack`` is the last ``seq`` the client has: frames up to it are forgotten, later ones
    are sent again (a lost answer loses nothing; the client drops numbers it has seen). The
    answer that carries the last frames after the application closed also has ``"close":
    {"code": C, "reason": R}``. A second poll while one waits answers the first at once with
    ``{"seq": ack, "frames": []}``. A session with no poll for ``timeout`` + 10 seconds ends
    (the application gets code 1001).

Client to server, both transports: ``POST <path>?sb_transport=sse|poll&sb_session=TOKEN``
    with ``{"frames": ["text", ...]}`` (a bytes frame as ``{"b": base64}``); ``"close": true``
    ends the session (the application gets code 1000). ``204`` once the frames are queued
    for the application, in order; ``400`` malformed (``{"error": ...}``); ``410`` the session
    is gone (open a new one); ``413`` over ``MAX_POST_BYTES``.

``410`` answers every request naming an unknown, ended or forged session. Sessions live in
the process that opened them; requests landing elsewhere are forwarded through the default
channel layer (:mod:`switchboard.transports.hosts`). Each session's outgoing frames are
bounded (``MAX_BUFFERED_FRAMES``, ``MAX_BUFFERED_BYTES``): the application's ``send`` never
waits for a slow client, and a client that falls that far behind has its session ended with
code 1013 (``sb.close`` on a stream, ``"close"`` in a poll answer). Settings:
``SWITCHBOARD_TRANSPORTS`` (:mod:`switchboard.transports.settings`).

Plain SSE events from the application
-------------------------------------

An application that knows it runs over SSE (``scope.get("transport") == "sse"``) may send
its own events instead of text frames::

    await send({"type": "sb.sse.event", "id": "e1:42", "event": "news", "data": "<p>hi</p>"})

The stream renders it as-is (``id:`` and ``event:`` lines when not None, ``data:`` lines),
so a plain ``EventSource`` or htmx's SSE extension reads it with no Switchboard client. A poll
session sends the dict ``{"type": "sb.sse.event", "id", "event", "data"}`` as a JSON frame.
An EventSource that reconnects sends ``Last-Event-ID``: it is in ``scope["headers"]`` as any
other request header. Over a real WebSocket the message type does not exist: send it only
when ``scope["transport"]`` says SSE (or poll).
"""

from __future__ import annotations

from typing import Any

from .scope import params
from .settings import transport_settings

__all__ = ["serve_transport"]


async def serve_transport(scope: dict[str, Any], receive: Any, send: Any, app: Any) -> bool:
    """Serve the HTTP request ``scope`` as a transport request for the websocket
    application ``app`` (called with websocket scopes); False, having touched nothing, when
    the request names no enabled transport (it is then the HTTP application's)."""
    found = params(scope.get("query_string", b""))
    settings = transport_settings()
    if found.transport not in settings.enabled or scope.get("method") not in ("GET", "POST"):
        return False
    # Imported on use: every process imports this package (the app config loads its check).
    from .http import respond
    from .poll_endpoint import open_poll, poll
    from .post_endpoint import post_frames
    from .sse_endpoint import open_stream

    get = scope["method"] == "GET"
    if found.session is not None:
        if not get:
            await post_frames(scope, receive, send, found.session, settings)
        elif found.transport == "poll":
            await poll(scope, receive, send, found.session, found.ack, settings)
        else:
            await respond(send, 400, {"error": "an SSE session is opened without sb_session"})
    elif get and found.transport == "sse":
        await open_stream(scope, receive, send, app, settings)
    elif not get and found.transport == "poll":
        await open_poll(scope, receive, send, app, settings)
    else:
        await respond(send, 405, {"error": f"{scope['method']} does not open this transport"})
    return True
