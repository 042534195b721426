"""Data binding: a model's creates, updates and deletes pushed live to subscribed sockets.

A binding is a JSON WebSocket consumer (use ``SomeBinding.as_asgi()``, typically as a stream
of a demultiplexer) plus a declaration of what to publish::

    class PostBinding(WebsocketBinding):
        model = Post
        stream = "posts"
        fields = ["title", "body", "published"]

        def has_permission(self, user, action, pk):
            return action == "subscribe" or user.is_staff

Every save or delete of ``model`` (from anywhere: views, the admin, the shell, another
process) is published after its transaction commits to the groups ``group_names(instance,
action)`` names, and from there to each subscribed socket that may see it (``can_view``).

Payloads (inside the demultiplexer's ``{"stream": ..., "payload": ...}``), client -> server:

* ``{"action": "subscribe", "pk": 1}``: one instance; ``{"action": "subscribe", "filter":
  {"published": true}}``: every instance whose fields equal these (no filter: all of them).
  The answer carries the current matching ``objects`` (up to ``max_snapshot``).
* ``{"action": "unsubscribe", "pk": 1}`` / ``{"action": "unsubscribe", "filter": {...}}`` /
  ``{"action": "unsubscribe"}`` (everything).
* ``{"action": "create", "data": {...}}``, ``{"action": "update", "pk": 1, "data": {...}}``
  (partial: unnamed fields keep their values), ``{"action": "delete", "pk": 1}``.

Any of them may carry a ``"request_id"``, echoed in the answer: ``{"response_to": action,
"request_id": ..., "ok": true, ...}`` or ``{..., "ok": false, "error": "forbidden" |
"not_found" | "invalid" | "bad_request", "errors"/"detail": ...}``.

Server -> client notifications: ``{"action": "create" | "update" | "delete", "pk": 1,
"model": "app.post", "data": {...}}``. A subscriber gets an instance's events while it matches
one of its subscriptions and ``can_view`` allows it; when it stops doing so (unpublished,
filtered out, deleted) the subscriber gets one ``delete`` for it. Treat ``update`` of an
unknown pk as an insert: an instance entering a filtered set arrives as its ``update``.

Every inbound action is checked with ``has_permission(user, action, pk)``, ``action`` one of
``"subscribe"`` (``pk`` None for a set), ``"create"`` (``pk`` None), ``"update"``,
``"delete"``; the default asks Django's model permissions (view/add/change/delete).

The binding classes here are assembled from one module per concern: what a binding declares
(``declaration``), who listens to what (``subscriptions``), writes from the client
(``writes``), merging rapid changes (``coalescing``), from saves to group sends (``publish``)
and the values and messages exchanged (``wire``).
"""

from __future__ import annotations

from typing import Any

from switchboard.binding.wire import ACTIONS, Refused, answer
from switchboard.binding.writes import BindingWrites
from switchboard.db import database_sync_to_async

__all__ = ["AsyncWebsocketBinding", "WebsocketBinding"]  # and Binding, on use (below)


class AsyncWebsocketBinding(BindingWrites):
    """Data binding whose hooks (``has_permission``, ``can_view``) are coroutines.

    ``group_names``, ``serialize`` and ``get_form`` are synchronous in both variants: they run
    in the saving thread and in the thread doing the write.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Not overridden: every event is visible, no per-event call.
        self._everyone_sees = type(self).can_view in (
            AsyncWebsocketBinding.can_view,
            WebsocketBinding.can_view,
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        request_id = content.get("request_id") if isinstance(content, dict) else None
        try:
            if action not in ACTIONS:
                raise Refused("bad_request", detail=f"action must be one of {', '.join(ACTIONS)}")
            body = await getattr(self, f"_{action}")(content, request_id)
        except Refused as refused:
            await self.send_json(answer(action, request_id, False, refused.body))
            return
        if body is not None:  # None: answered later (a coalesced update)
            await self.send_json(answer(action, request_id, True, body))


class WebsocketBinding(AsyncWebsocketBinding):
    """Data binding with synchronous hooks (Channels 1's name), run in a thread: they may
    use the ORM. ``has_permission(user, action, pk)`` and ``can_view(user, data)``."""

    def has_permission(self, user: Any, action: str, pk: Any) -> bool:  # type: ignore[override]
        return self.model_permission(user, action)

    def can_view(self, user: Any, data: dict[str, Any]) -> bool:  # type: ignore[override]
        return True

    async def _permitted(self, action: str, pk: Any) -> bool:
        return bool(await database_sync_to_async(self.has_permission)(self.user, action, pk))

    async def _viewable(self, data: dict[str, Any]) -> bool:
        return bool(await database_sync_to_async(self.can_view)(self.user, data))


def __getattr__(name: str) -> Any:
    # Channels 1's channels.binding.base.Binding, loaded on use (it builds on this package).
    if name == "Binding":
        from switchboard.classic.binding import Binding

        return Binding
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
