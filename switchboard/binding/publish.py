"""From model saves to group sends: registration, signals and ``on_commit``.

Declaring a binding registers it here: its model's ``post_save`` and ``post_delete`` then
publish to it. A save or delete of a bound model is turned into an event at once (the
instance's data as it is then, and the groups it goes to), but the event is only published
once the transaction commits: a rolled-back write publishes nothing. Publishing runs on the
event loop that owns the channel layer: from a thread (a sync view,
``database_sync_to_async``) through ``async_to_sync``; from a management command or shell, on
a loop of its own. Events go through this loop's
:class:`~switchboard.binding.coalescing.Coalescer` (per binding and instance,
``coalesce_window`` seconds).
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

from switchboard.binding.coalescing import Coalescer, keep_task
from switchboard.layers import get_channel_layer

if TYPE_CHECKING:
    from switchboard.binding.declaration import BindingDeclaration

__all__ = ["publish", "register"]

logger = logging.getLogger("switchboard.binding")

Event = dict[str, Any]

# stream -> binding, and model -> its bindings (what a save of that model publishes to)
_by_stream: dict[str, type[BindingDeclaration]] = {}
_bindings: dict[type, list[type[BindingDeclaration]]] = {}


def register(binding: type[BindingDeclaration]) -> None:
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


def _publish_now(binding: type[BindingDeclaration], event: Event) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    try:
        if loop is not None:
            # Saved from the event loop's own thread (DJANGO_ALLOW_ASYNC_UNSAFE): no waiting.
            keep_task(loop.create_task(publish(binding, event)))
        else:
            async_to_sync(publish)(binding, event)
    except Exception:
        # The write is committed whatever happens here: report, never undo or raise.
        logger.exception("Could not publish %s of %s", event["action"], binding.__name__)


def new_event_id() -> str:
    return secrets.token_hex(8)


async def publish(binding: type[BindingDeclaration], event: Event) -> None:
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
