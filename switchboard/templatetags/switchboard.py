"""``{% load switchboard %}``: tokens and EventSource URLs for signed streams.

``{% stream_token "news" %}``
    A token for stream ``news`` (:func:`switchboard.streams.signed_stream_name`), for
    ``client.subscribe(token)`` in switchboard.js.
``{% stream_token "inbox" for_user=request.user expires=3600 %}``
    The user's own stream (:func:`switchboard.streams.stream_for`: ``inbox.user.<pk>``),
    bound to them, valid for an hour. An anonymous user is an error: render such tags for
    logged-in users only.
``{% stream_url "news" %}`` (same options)
    The URL a bare ``EventSource`` (or htmx's ``sse`` extension) opens:
    ``SWITCHBOARD_STREAMS_URL`` (default ``/streams/``, where a
    :class:`~switchboard.streams.SignedStreamConsumer` is routed) with
    ``?stream=TOKEN&format=events&sb_transport=sse``; ``history=N`` adds the last ``N``
    publications on connect. ``format="html"`` gives the WebSocket URL (path and query, no
    scheme) for htmx's ``ws`` extension instead: ``?stream=TOKEN&format=html``.

Both may be stored with ``as``: ``{% stream_token "news" as token %}``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.conf import settings

from switchboard.streams.tokens import signed_stream_name, stream_for

register = template.Library()

DEFAULT_STREAMS_URL = "/streams/"


@register.simple_tag
def stream_token(name: str, for_user: Any = None, expires: float | None = None) -> str:
    if for_user is not None:
        return signed_stream_name(stream_for(for_user, name), user=for_user, expires=expires)
    return signed_stream_name(name, expires=expires)


@register.simple_tag
def stream_url(
    name: str,
    for_user: Any = None,
    expires: float | None = None,
    history: int | None = None,
    format: str = "events",
) -> str:
    if format not in ("events", "html"):
        raise template.TemplateSyntaxError(f"stream_url format={format!r}: use events or html")
    base = getattr(settings, "SWITCHBOARD_STREAMS_URL", DEFAULT_STREAMS_URL)
    query = {"stream": stream_token(name, for_user, expires), "format": format}
    if history:
        query["history"] = str(int(history))
    if format == "events":
        query["sb_transport"] = "sse"
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode(query)}"
