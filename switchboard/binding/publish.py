"""From model saves to group sends: signals, ``on_commit`` and coalescing.

A save or delete of a bound model is turned into an event at once (the instance's data as it
is then, and the groups it goes to), but the event is only published once the transaction
commits: a rolled-back write publishes nothing. Publishing runs on the event loop that owns
the channel layer: from a thread (a sync view, ``database_sync_to_async``) through
``async_to_sync``; from a management command or shell, on a loop of its own.

Coalescing (per binding and instance, ``coalesce_window`` seconds): the first event goes out
at once and opens a window; updates arriving during the window replace each other and the
last one goes out when it ends (opening the next window). Creates and deletes are never
delayed: a delete drops the update still waiting, a create sends it first. A slider saved
60 times a second thus costs one notification per window, and the final state always arrives.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from switchboard.layers import get_channel_layer

if TYPE_CHECKING:
    from switchboard.binding.base import AsyncWebsocketBinding

__all__ = ["Coalescer", "publish", "register"]

logger = logging.getLogger("switchboard.binding")

Event = dict[str, Any]

# stream -> binding, and model -> its bindings (what a save of that model publishes to)
_by_stream: dict[str, type[AsyncWebsocketBinding]] = {}
_bindings: dict[type, list[type[AsyncWebsocketBinding]]] = {}


def register(binding: type[AsyncWebsocketBinding]) -> None:
    """Publish ``binding.model``'s saves and deletes to ``binding``'s subscribers."""
    stream, model = binding.stream, binding.model
    if stream is None or model is None:
        raise ImproperlyConfigured(f"{binding.__qualname__} must declare a model and a stream")
    known = _by_stream.get(stream)
    if known is not None and (known.__module__, known.__qualname__) != (
        binding.__module__,
        binding.__qualname__,
    ):
        # Stream names make the group names: two bindings sharing one would mix their events.
        raise ImproperlyConfigured(
            f"{binding.__qualname__}: stream {stream!r} is already bound by {known.__qualname__}"
        )
    if known is not None:  # the same class declared again (a reloaded module)
        assert known.model is not None  # checked when it was registered
        _bindings[known.model].remove(known)
    _by_stream[stream] = binding
    _bindings.setdefault(model, []).append(binding)
    uid = f"switchboard.binding:{model._meta.label}"
    post_save.connect(_saved, sender=model, dispatch_uid=uid, weak=False)
    post_delete.connect(_deleted, sender=model, dispatch_uid=uid, weak=False)


def _saved(sender: type, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw:  # loaddata: fixtures are not live changes
        return
    _queue(sender, instance, "create" if created else "update", kwargs.get("using"))


def _deleted(sender: type, instance: Any, **kwargs: Any) -> None:
    _queue(sender, instance, "delete", kwargs.get("using"))


def _queue(model: type, instance: Any, action: str, using: str | None) -> None:
    for binding in _bindings.get(model, ()):
        event = binding.make_event(instance, action)
        if event is not None:
            # Runs now when no transaction is open; after COMMIT otherwise, never on ROLLBACK.
            transaction.on_commit(lambda b=binding, e=event: _publish_now(b, e), using=using)


def _publish_now(binding: type[AsyncWebsocketBinding], event: Event) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    try:
        if loop is not None:
            # Saved from the event loop's own thread (DJANGO_ALLOW_ASYNC_UNSAFE): no waiting.
            _keep(loop.create_task(publish(binding, event)))
        else:
            async_to_sync(publish)(binding, event)
    except Exception:
        # The write is committed whatever happens here: report, never undo or raise.
        logger.exception("Could not publish %s of %s", event["action"], binding.__name__)


_tasks: set[asyncio.Task[Any]] = set()


def _keep(task: asyncio.Task[Any]) -> None:
    _tasks.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[Any]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("Publishing a binding event failed", exc_info=task.exception())


def new_event_id() -> str:
    return secrets.token_hex(8)


async def publish(binding: type[AsyncWebsocketBinding], event: Event) -> None:
    """Send ``event`` to its groups, through this loop's coalescer."""
    layer = get_channel_layer(binding.channel_layer_alias)
    if layer is None:
        return
    await _coalescer().submit(event, binding.coalesce_window, _group_sender(layer))


def _group_sender(layer: Any) -> Callable[[Event], Awaitable[None]]:
    async def send(event: Event) -> None:
        groups = event["groups"]
        message = {k: v for k, v in event.items() if k != "groups"}
        for group in groups:
            await layer.group_send(group, message)

    return send


_coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer] = (
    weakref.WeakKeyDictionary()
)


def _coalescer() -> Coalescer:
    loop = asyncio.get_running_loop()
    coalescer = _coalescers.get(loop)
    if coalescer is None:
        coalescer = _coalescers[loop] = Coalescer()
    return coalescer


class _Window:
    __slots__ = ("handle", "pending", "send")

    def __init__(self, handle: asyncio.TimerHandle) -> None:
        self.handle = handle
        self.pending: Event | None = None
        self.send: Callable[[Event], Awaitable[None]] | None = None


class Coalescer:
    """Leading- and trailing-edge throttling of events per ``(stream, pk)`` (see above).

    Sends for one key go out in the order they were decided, even though a trailing send
    runs in a task of its own.
    """

    def __init__(self) -> None:
        self.windows: dict[tuple[str, Any], _Window] = {}
        self.tails: dict[tuple[str, Any], asyncio.Future[None]] = {}

    async def submit(
        self, event: Event, window: float, send: Callable[[Event], Awaitable[None]]
    ) -> None:
        if window <= 0:
            await send(event)
            return
        key = (event["stream"], event["pk"])
        slot = self.windows.get(key)
        if slot is None:
            self._open(key, window)
            await self._in_order(key, send, event)
        elif event["action"] == "update":
            slot.pending, slot.send = event, send  # the latest state replaces the waiting one
        else:
            pending, slot.pending = slot.pending, None
            if pending is not None and event["action"] == "create":
                await self._in_order(key, send, pending)
            await self._in_order(key, send, event)

    def _open(self, key: tuple[str, Any], window: float) -> None:
        loop = asyncio.get_running_loop()
        self.windows[key] = _Window(loop.call_later(window, self._close, key, window))

    def _close(self, key: tuple[str, Any], window: float) -> None:
        slot = self.windows.pop(key, None)
        if slot is None or slot.pending is None or slot.send is None:
            return
        self._open(key, window)  # keep throttling while updates keep coming
        _keep(asyncio.ensure_future(self._in_order(key, slot.send, slot.pending)))

    def _in_order(
        self, key: tuple[str, Any], send: Callable[[Event], Awaitable[None]], event: Event
    ) -> Awaitable[None]:
        # The place in line is taken now, synchronously, not when the coroutine first runs.
        before = self.tails.get(key)
        mine = asyncio.get_running_loop().create_future()
        self.tails[key] = mine

        async def run() -> None:
            try:
                if before is not None:
                    await before
                await send(event)
            finally:
                mine.set_result(None)
                if self.tails.get(key) is mine:
                    del self.tails[key]

        return run()

    def pending(self) -> int:
        return sum(1 for slot in self.windows.values() if slot.pending is not None)
