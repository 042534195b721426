"""Who listens to what: a connection's subscriptions, the layer groups they join, and which
published events reach its client.

A subscription names one instance (``pk``) or a filtered set of them; the groups joined are
``subscription_group_names`` of each. An event reaches the client while its instance matches
a subscription and ``can_view`` allows it; when it stops doing so the client gets one
``delete`` for it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from django.core.exceptions import ValidationError

from switchboard.binding.declaration import BindingDeclaration
from switchboard.binding.wire import Refused, matches, pk_key
from switchboard.db import database_sync_to_async

__all__ = ["BindingSubscriptions"]

_FILTER_VALUE = (str, int, float, bool, type(None))


class BindingSubscriptions(BindingDeclaration):
    """Subscribing, unsubscribing and forwarding events (see the module's docstring)."""

    # Set by the binding itself: True when ``can_view`` is not overridden (no per-event call).
    _everyone_sees: bool

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pks: set[Any] = set()
        self._filters: list[dict[str, Any]] = []
        self._visible: set[Any] = set()  # pks this client holds through its subscriptions
        self._in_groups: set[str] = set()
        self._seen: deque[str] = deque(maxlen=64)  # an event reaches us once per group

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the connection ended: no group keeps sending to a dead channel.
            if self._in_groups:
                layer = self._required_layer("subscribes")
                for group in list(self._in_groups):
                    await layer.group_discard(group, self.channel_name)
                self._in_groups.clear()

    # -- reading a request -----------------------------------------------------------------

    def _pk_of(self, content: dict[str, Any]) -> Any:
        raw = content.get("pk")
        if raw is None or isinstance(raw, (bool, dict, list)):
            raise Refused("bad_request", detail='"pk" is missing or not a key')
        try:
            return pk_key(self.model._meta.pk.to_python(raw))  # type: ignore[union-attr]
        except (ValidationError, ValueError, TypeError):
            raise Refused("bad_request", detail='"pk" is not a valid key') from None

    def _filter_of(self, content: dict[str, Any]) -> dict[str, Any]:
        filter_ = content.get("filter") or {}
        if not isinstance(filter_, dict) or len(filter_) > 10:
            raise Refused("bad_request", detail='"filter" must be an object of up to 10 fields')
        for field, value in filter_.items():
            # Only published fields, exact values: no lookups reaching into other data.
            if field not in self._field_names or not isinstance(value, _FILTER_VALUE):
                raise Refused("bad_request", detail=f"cannot filter on {field!r}")
        return filter_

    # -- subscribe and unsubscribe ---------------------------------------------------------

    async def _subscribe(self, content: dict[str, Any], request_id: Any) -> dict[str, Any]:
        pk = self._pk_of(content) if "pk" in content else None
        filter_ = self._filter_of(content) if pk is None else None
        if not await self._permitted("subscribe", pk):
            raise Refused("forbidden")
        if len(self._pks) + len(self._filters) >= self.max_subscriptions:
            raise Refused("bad_request", detail="too many subscriptions")
        # Join first, then read: an event racing the read is handled after this answer and
        # carries newer data, so the client ends up current either way.
        if pk is not None:
            self._pks.add(pk)
        elif filter_ not in self._filters:
            self._filters.append(filter_)  # type: ignore[arg-type]
        await self._sync_groups()
        try:
            objects, truncated = await database_sync_to_async(self._snapshot)(pk, filter_)
        except (ValidationError, ValueError, TypeError):
            await self._unsubscribe(content, request_id)
            raise Refused("bad_request", detail="the filter does not fit the fields") from None
        if not self._everyone_sees:
            objects = [o for o in objects if await self._viewable(o["data"])]
        self._visible.update(o["pk"] for o in objects)
        body: dict[str, Any] = {"objects": objects}
        if pk is not None:
            body["pk"] = pk
        else:
            body["filter"] = filter_
        if truncated:
            body["truncated"] = True
        return body

    def _snapshot(self, pk: Any, filter_: dict[str, Any] | None) -> tuple[list[dict], bool]:
        queryset = self.get_queryset()
        queryset = queryset.filter(pk=pk) if pk is not None else queryset.filter(**filter_)  # type: ignore[arg-type]
        if not queryset.ordered:
            queryset = queryset.order_by("pk")
        found = list(queryset[: self.max_snapshot + 1])
        objects = [{"pk": pk_key(o.pk), "data": self.serialize(o)} for o in found]
        return objects[: self.max_snapshot], len(found) > self.max_snapshot

    async def _unsubscribe(self, content: dict[str, Any], request_id: Any) -> dict[str, Any]:
        if "pk" in content:
            self._pks.discard(self._pk_of(content))
        elif "filter" in content:
            filter_ = self._filter_of(content)
            self._filters = [f for f in self._filters if f != filter_]
        else:
            self._pks.clear()
            self._filters.clear()
        if not self._pks and not self._filters:
            self._visible.clear()
        await self._sync_groups()
        return {}

    async def _sync_groups(self) -> None:
        wanted: set[str] = set()
        for pk in self._pks:
            wanted.update(self.subscription_group_names(pk))
        if self._filters:
            wanted.update(self.subscription_group_names(None))
        joins, leaves = wanted - self._in_groups, self._in_groups - wanted
        if not joins and not leaves:
            return
        layer = self._required_layer("subscribes")
        for group in joins:
            await layer.group_add(group, self.channel_name)
            self._in_groups.add(group)
        for group in leaves:
            await layer.group_discard(group, self.channel_name)
            self._in_groups.discard(group)

    # -- outbound --------------------------------------------------------------------------

    async def binding_event(self, event: dict[str, Any]) -> None:
        event_id = event["id"]
        if event_id in self._seen:
            return
        self._seen.append(event_id)
        pk, data, action = event["pk"], event["data"], event["action"]
        was_visible = pk in self._visible
        wanted = pk in self._pks or any(matches(f, data) for f in self._filters)
        if not wanted and not was_visible:
            return
        visible = (
            wanted and action != "delete" and (self._everyone_sees or await self._viewable(data))
        )
        if visible:
            self._visible.add(pk)
            await self.send_json(
                {"action": action, "pk": pk, "model": event["model"], "data": data}
            )
        elif was_visible:  # deleted, or out of this subscriber's view: drop it client-side
            self._visible.discard(pk)
            await self.send_json({"action": "delete", "pk": pk, "model": event["model"]})
