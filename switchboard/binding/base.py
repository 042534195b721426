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
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.forms import BaseForm, ModelForm, model_to_dict, modelform_factory

from switchboard.binding import publish
from switchboard.binding.wire import group_name, json_safe, matches, pk_key
from switchboard.db import database_sync_to_async
from switchboard.generic.websocket import AsyncJsonWebsocketConsumer

__all__ = ["AsyncWebsocketBinding", "WebsocketBinding"]

ACTIONS = ("subscribe", "unsubscribe", "create", "update", "delete")
_PERMISSION_OF = {"subscribe": "view", "create": "add", "update": "change", "delete": "delete"}
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
_FILTER_VALUE = (str, int, float, bool, type(None))


class _Refused(Exception):
    """An inbound action answered with ``ok: false`` (``error`` and details in ``body``)."""

    def __init__(self, error: str, **body: Any) -> None:
        super().__init__(error)
        self.body = {"error": error, **body}


class _PendingUpdate:
    __slots__ = ("data", "request_ids")

    def __init__(self, data: dict[str, Any], request_id: Any) -> None:
        self.data = data
        self.request_ids = [request_id]


class AsyncWebsocketBinding(AsyncJsonWebsocketConsumer):
    """Data binding whose hooks (``has_permission``, ``can_view``) are coroutines.

    ``group_names``, ``serialize`` and ``get_form`` are synchronous in both variants: they run
    in the saving thread and in the thread doing the write.
    """

    #: The bound model.
    model: type[Model] | None = None
    #: The binding's name: events and group names carry it. Unique per binding.
    stream: str | None = None
    #: Fields in payloads and accepted by the default form (or ``"__all__"``).
    fields: Sequence[str] | str | None = None
    #: Fields clients may write through the default form (default: the editable ``fields``).
    form_fields: Sequence[str] | None = None
    #: A form class for inbound create/update (default: a ModelForm over ``form_fields``).
    form_class: type[BaseForm] | None = None
    #: Seconds over which rapid updates of one instance are merged, both the notifications
    #: published and the updates clients send. 0 turns coalescing off.
    coalesce_window: float = 0.1
    #: Subscriptions one connection may hold, and objects sent back by one subscribe.
    max_subscriptions: int = 50
    max_snapshot: int = 100

    _field_names: tuple[str, ...] = ()
    _form: type[BaseForm] | None = None

    # -- declaration -----------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declares = "model" in cls.__dict__ or "stream" in cls.__dict__
        if not declares or cls.model is None:
            return  # an abstract base, or a variant of an already declared binding
        if not isinstance(cls.stream, str) or not _STREAM_NAME.match(cls.stream):
            raise ImproperlyConfigured(
                f"{cls.__qualname__}.stream must be 1-40 ASCII letters, digits, '-' or '_'"
            )
        cls._field_names = cls._resolve_fields()
        cls._form = None
        publish.register(cls)

    @classmethod
    def _resolve_fields(cls) -> tuple[str, ...]:
        opts = cls.model._meta  # type: ignore[union-attr]
        if cls.fields == "__all__":
            return tuple(f.name for f in opts.concrete_fields if not f.primary_key)
        if not cls.fields or isinstance(cls.fields, str):
            # Explicit on purpose: whatever is listed is sent to every subscriber.
            raise ImproperlyConfigured(
                f"{cls.__qualname__}.fields must list fields or be '__all__'"
            )
        for name in cls.fields:
            try:
                field = opts.get_field(name)
            except FieldDoesNotExist:
                raise ImproperlyConfigured(
                    f"{cls.__qualname__}.fields: no field {name!r}"
                ) from None
            if not field.concrete or field.many_to_many:
                raise ImproperlyConfigured(
                    f"{cls.__qualname__}.fields: {name!r} is not a concrete column"
                )
        return tuple(cls.fields)

    # -- publishing (sync: runs where the model is saved) ----------------------------------

    @classmethod
    def group_names(cls, instance: Model, action: str) -> Iterable[str]:
        """Groups an event about ``instance`` goes to. Override together with
        ``subscription_group_names``: subscribers must join what this returns."""
        return [group_name(cls.stream), group_name(cls.stream, instance.pk)]  # type: ignore[arg-type]

    @classmethod
    def serialize(cls, instance: Model) -> dict[str, Any]:
        """The ``data`` of notifications and answers (JSON types only)."""
        opts = instance._meta
        return {
            n: json_safe(opts.get_field(n).value_from_object(instance)) for n in cls._field_names
        }

    @classmethod
    def make_event(cls, instance: Model, action: str) -> dict[str, Any] | None:
        groups = list(cls.group_names(instance, action))
        if not groups:
            return None
        return {
            "type": "binding.event",
            "id": publish.new_event_id(),
            "stream": cls.stream,
            "model": instance._meta.label_lower,
            "action": action,
            "pk": pk_key(instance.pk),
            "data": cls.serialize(instance),
            "groups": groups,
        }

    # -- hooks -----------------------------------------------------------------------------

    def subscription_group_names(self, pk: Any | None) -> list[str]:
        """Groups joined for a subscription to one instance (``pk``) or to a set (None)."""
        return [group_name(self.stream, pk)]  # type: ignore[arg-type]

    def get_queryset(self) -> QuerySet:
        """Instances subscriptions look at and updates/deletes may touch (sync)."""
        return self.model._default_manager.all()  # type: ignore[union-attr]

    def get_form(self, data: dict[str, Any], instance: Model | None = None) -> BaseForm:
        """The form validating an inbound create (``instance`` None) or update (sync)."""
        cls = type(self)
        if cls.form_class is not None:
            return cls.form_class(data=data, instance=instance)
        if cls._form is None:
            opts = cls.model._meta  # type: ignore[union-attr]
            names = cls._field_names if cls.form_fields is None else cls.form_fields
            editable = [n for n in names if opts.get_field(n).editable]
            cls._form = modelform_factory(cls.model, form=ModelForm, fields=editable)
        return cls._form(data=data, instance=instance)

    def model_permission(self, user: Any, action: str) -> bool:
        """Django's model permission matching ``action`` (sync: may query)."""
        opts = self.model._meta  # type: ignore[union-attr]
        codename = get_permission_codename(_PERMISSION_OF[action], opts)
        return bool(user.has_perm(f"{opts.app_label}.{codename}"))

    async def has_permission(self, user: Any, action: str, pk: Any) -> bool:
        return await database_sync_to_async(self.model_permission)(user, action)

    async def can_view(self, user: Any, data: dict[str, Any]) -> bool:
        """Whether ``user`` may see an instance with this ``data`` (per subscriber)."""
        return True

    async def _permitted(self, action: str, pk: Any) -> bool:
        return bool(await self.has_permission(self.user, action, pk))

    async def _viewable(self, data: dict[str, Any]) -> bool:
        return bool(await self.can_view(self.user, data))

    # -- connection ------------------------------------------------------------------------

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pks: set[Any] = set()
        self._filters: list[dict[str, Any]] = []
        self._visible: set[Any] = set()  # pks this client holds through its subscriptions
        self._in_groups: set[str] = set()
        self._seen: deque[str] = deque(maxlen=64)  # an event reaches us once per group
        self._updates: dict[Any, _PendingUpdate] = {}
        self._last_update: dict[Any, float] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        # Not overridden: every event is visible, no per-event call.
        self._everyone_sees = type(self).can_view in (
            AsyncWebsocketBinding.can_view,
            WebsocketBinding.can_view,
        )

    @property
    def user(self) -> Any:
        user = self.scope.get("user")
        if user is None:
            from django.contrib.auth.models import AnonymousUser  # needs the app registry

            user = AnonymousUser()
        return user

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

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # Updates the client sent are applied even though it left before the window closed.
        for pk in list(self._updates):
            await self._flush_update(pk)
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        await super().websocket_disconnect(message)

    # -- inbound ---------------------------------------------------------------------------

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        request_id = content.get("request_id") if isinstance(content, dict) else None
        try:
            if action not in ACTIONS:
                raise _Refused("bad_request", detail=f"action must be one of {', '.join(ACTIONS)}")
            body = await getattr(self, f"_{action}")(content, request_id)
        except _Refused as refused:
            await self._answer(action, request_id, False, refused.body)
            return
        if body is not None:  # None: answered later (a coalesced update)
            await self._answer(action, request_id, True, body)

    async def _answer(self, action: Any, request_id: Any, ok: bool, body: dict[str, Any]) -> None:
        answer = {"response_to": action, "ok": ok, **body}
        if request_id is not None:
            answer["request_id"] = request_id
        await self.send_json(answer)

    def _pk_of(self, content: dict[str, Any]) -> Any:
        raw = content.get("pk")
        if raw is None or isinstance(raw, (bool, dict, list)):
            raise _Refused("bad_request", detail='"pk" is missing or not a key')
        try:
            return pk_key(self.model._meta.pk.to_python(raw))  # type: ignore[union-attr]
        except (ValidationError, ValueError, TypeError):
            raise _Refused("bad_request", detail='"pk" is not a valid key') from None

    def _filter_of(self, content: dict[str, Any]) -> dict[str, Any]:
        filter_ = content.get("filter") or {}
        if not isinstance(filter_, dict) or len(filter_) > 10:
            raise _Refused("bad_request", detail='"filter" must be an object of up to 10 fields')
        for field, value in filter_.items():
            # Only published fields, exact values: no lookups reaching into other data.
            if field not in self._field_names or not isinstance(value, _FILTER_VALUE):
                raise _Refused("bad_request", detail=f"cannot filter on {field!r}")
        return filter_

    async def _subscribe(self, content: dict[str, Any], request_id: Any) -> dict[str, Any]:
        pk = self._pk_of(content) if "pk" in content else None
        filter_ = self._filter_of(content) if pk is None else None
        if not await self._permitted("subscribe", pk):
            raise _Refused("forbidden")
        if len(self._pks) + len(self._filters) >= self.max_subscriptions:
            raise _Refused("bad_request", detail="too many subscriptions")
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
            raise _Refused("bad_request", detail="the filter does not fit the fields") from None
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

    async def _create(self, content: dict[str, Any], request_id: Any) -> dict[str, Any]:
        data = self._data_of(content)
        if not await self._permitted("create", None):
            raise _Refused("forbidden")
        return await self._write("create", None, data)

    async def _delete(self, content: dict[str, Any], request_id: Any) -> dict[str, Any]:
        pk = self._pk_of(content)
        if not await self._permitted("delete", pk):
            raise _Refused("forbidden")
        self._updates.pop(pk, None)  # an update still waiting would only find it gone
        return await self._write("delete", pk, None)

    async def _update(self, content: dict[str, Any], request_id: Any) -> dict[str, Any] | None:
        pk = self._pk_of(content)
        data = self._data_of(content)
        if not await self._permitted("update", pk):
            raise _Refused("forbidden")
        window = self.coalesce_window
        pending = self._updates.get(pk)
        if pending is not None:  # merge into the update waiting for the window to end
            pending.data.update(data)
            pending.request_ids.append(request_id)
            return None
        loop = asyncio.get_running_loop()
        wait = self._last_update.get(pk, -window) + window - loop.time()
        if window <= 0 or wait <= 0:
            self._note_update(pk, loop.time())
            return await self._write("update", pk, data)
        self._updates[pk] = _PendingUpdate(dict(data), request_id)
        loop.call_later(wait, self._flush_soon, pk)
        return None

    def _note_update(self, pk: Any, now: float) -> None:
        last = self._last_update
        last[pk] = now
        if len(last) > 1000:  # forget instances not updated within the window
            for key in [k for k, t in last.items() if now - t > self.coalesce_window]:
                del last[key]

    def _flush_soon(self, pk: Any) -> None:
        task = asyncio.ensure_future(self._flush_update(pk))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush_update(self, pk: Any) -> None:
        pending = self._updates.pop(pk, None)
        if pending is None:
            return
        self._note_update(pk, asyncio.get_running_loop().time())
        try:
            body, ok = await self._write("update", pk, pending.data), True
        except _Refused as refused:
            body, ok = refused.body, False
        for request_id in pending.request_ids:
            await self._answer("update", request_id, ok, body)

    def _data_of(self, content: dict[str, Any]) -> dict[str, Any]:
        data = content.get("data")
        if not isinstance(data, dict):
            raise _Refused("bad_request", detail='"data" must be an object')
        return data

    async def _write(self, action: str, pk: Any, data: dict[str, Any] | None) -> dict[str, Any]:
        return await database_sync_to_async(self._write_sync)(action, pk, data)

    def _write_sync(self, action: str, pk: Any, data: dict[str, Any] | None) -> dict[str, Any]:
        with transaction.atomic(using=router.db_for_write(self.model)):
            instance = None
            if action != "create":
                instance = self.get_queryset().filter(pk=pk).first()
                if instance is None:
                    raise _Refused("not_found", pk=pk)
            if action == "delete":
                instance.delete()  # type: ignore[union-attr]
                return {"pk": pk}
            # Fields not sent keep their values (update) or take the model's defaults (create);
            # a form would read a missing checkbox as False and a missing number as an error.
            form_fields = list(self.get_form({}, instance).fields)
            if instance is not None:
                current = model_to_dict(instance, fields=form_fields)
            else:
                opts = self.model._meta  # type: ignore[union-attr]
                current = {}
                for name in form_fields:
                    field = opts.get_field(name)
                    if field.has_default():
                        current[name] = field.get_default()
            form = self.get_form({**current, **(data or {})}, instance)
            if not form.is_valid():
                raise _Refused("invalid", errors=form.errors.get_json_data())
            saved = form.save()
            return {"pk": pk_key(saved.pk), "data": self.serialize(saved)}

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
