"""Publishing to signed streams, from async code and from any thread.

A publication is a reliable one (:func:`switchboard.realtime.history.publish`) on the stream's
topic (:func:`~switchboard.streams.names.stream_topic`), so subscribers recover what they
missed after a reconnect. Its history entry (what the store keeps and the group receives as
``data``) is::

    {"data": <the data>}                       # no event
    {"data": <the data>, "event": "update"}    # with an event name

``data`` is anything JSON can encode; a string (HTML, say) is kept and sent as is. The
consumer (:class:`~switchboard.streams.consumer.SignedStreamConsumer`) unwraps the entry: a
``pub`` frame carries ``data`` and, when set, ``event`` beside it; a plain SSE event uses
``event`` as its type.

The synchronous :func:`publish` and :func:`publish_html` work from views, signal handlers,
sync tasks and threads of your own, through :func:`switchboard.tasks.bridge.run_sync`, with
one exception to its choice of loop: an in-process layer (the in-memory layer, which belongs
to one event loop) is driven on the loop serving this process's stream connections, so a
publication from a plain thread reaches them at once and safely.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgiref.sync import sync_to_async
from django.template.loader import render_to_string

from switchboard.layers import get_channel_layer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER
from switchboard.layers.stores.history import DEFAULT_HISTORY_SIZE, DEFAULT_HISTORY_TTL
from switchboard.realtime.history import Position
from switchboard.realtime.history import publish as publish_topic
from switchboard.streams.names import stream_topic, validate_event_name

__all__ = ["apublish", "apublish_html", "entry_data", "publish", "publish_html"]

# The loop running this process's SignedStreamConsumers (noted as each one starts): the
# one loop an in-process layer may be used from (see the module docstring).
_subscribers_loop: asyncio.AbstractEventLoop | None = None


def note_subscribers_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _subscribers_loop
    _subscribers_loop = loop


def make_entry(data: Any, event: str | None) -> dict[str, Any]:
    """The history entry for ``data`` (see the module docstring); refuses what JSON cannot
    carry and bad event names here, where the caller can see it."""
    if not isinstance(data, str):
        try:
            json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"stream data must be a string or JSON-encodable: {exc}") from None
    entry: dict[str, Any] = {"data": data}
    if event is not None:
        entry["event"] = validate_event_name(event)
    return entry


def entry_data(entry: Any) -> tuple[Any, str | None]:
    """``(data, event)`` of a history entry. A topic written to directly, not through
    :func:`publish`, has no envelope: the whole entry is the data."""
    if isinstance(entry, dict) and "data" in entry and set(entry) <= {"data", "event"}:
        event = entry.get("event")
        return entry["data"], event if isinstance(event, str) else None
    return entry, None


async def apublish(
    stream: str,
    data: Any,
    *,
    event: str | None = None,
    size: int = DEFAULT_HISTORY_SIZE,
    ttl: float = DEFAULT_HISTORY_TTL,
    layer: Any = None,
    alias: str = DEFAULT_CHANNEL_LAYER,
) -> Position:
    """Publish ``data`` on ``stream`` (``event``: its event name, for SSE and htmx); the
    stream keeps its last ``size`` publications, none older than ``ttl`` seconds, for
    recovery. Returns the publication's epoch and offset; raises when the history cannot
    store it (the layer's backend is down)."""
    entry = make_entry(data, event)
    return await publish_topic(
        stream_topic(stream), entry, size=size, ttl=ttl, layer=layer, alias=alias
    )


def publish(
    stream: str,
    data: Any,
    *,
    event: str | None = None,
    size: int = DEFAULT_HISTORY_SIZE,
    ttl: float = DEFAULT_HISTORY_TTL,
    layer: Any = None,
    alias: str = DEFAULT_CHANNEL_LAYER,
) -> Position:
    """:func:`apublish` for synchronous code (a view, a signal handler, a thread)."""
    _refuse_inside_a_loop("publish", "apublish")
    # Bad arguments fail in the caller's thread, with its traceback.
    make_entry(data, event)
    stream_topic(stream)

    async def run() -> Position:
        return await apublish(
            stream, data, event=event, size=size, ttl=ttl, layer=layer, alias=alias
        )

    return _run(run, layer if layer is not None else get_channel_layer(alias))


async def apublish_html(
    stream: str,
    template_name: str | list[str],
    context: dict[str, Any] | None = None,
    *,
    event: str | None = None,
    request: Any = None,
    **options: Any,
) -> Position:
    """Render ``template_name`` once (Django's ``render_to_string``, in a thread, since
    templates may query the database) and publish the HTML on ``stream``. ``options``: those
    of :func:`apublish`."""
    html = await sync_to_async(render_to_string)(template_name, context, request)
    return await apublish(stream, html, event=event, **options)


def publish_html(
    stream: str,
    template_name: str | list[str],
    context: dict[str, Any] | None = None,
    *,
    event: str | None = None,
    request: Any = None,
    **options: Any,
) -> Position:
    """:func:`apublish_html` for synchronous code; renders in the calling thread."""
    _refuse_inside_a_loop("publish_html", "apublish_html")
    html = render_to_string(template_name, context, request)
    return publish(stream, html, event=event, **options)


def _refuse_inside_a_loop(name: str, async_name: str) -> None:
    # Blocking a running loop on a publication could wait on that very loop.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{name}() was called from async code: use 'await {async_name}(...)'")


def _run(func: Any, layer: Any) -> Position:
    loop = _subscribers_loop
    if (
        layer is not None
        and not getattr(layer, "spans_processes", True)
        and loop is not None
        and loop.is_running()
    ):
        return asyncio.run_coroutine_threadsafe(func(), loop).result()
    # Imported here: switchboard.tasks loads Django's Tasks API (the backport pulls in the
    # admin), seconds that `switchboard publish --url` and plain imports should not pay.
    from switchboard.tasks.bridge import run_sync

    result: Position = run_sync(func)
    return result
