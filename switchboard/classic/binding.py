"""Channels 1's data binding: ``Binding`` and ``WebsocketBinding``.

A binding ties a model to WebSocket clients both ways::

    class IntegerValueBinding(WebsocketBinding):
        model = IntegerValue
        stream = "intval"
        fields = ["name", "value"]           # or ["__all__"], or exclude = [...]

        @classmethod
        def group_names(cls, instance):      # Channels 1.0: def group_names(self, instance, action)
            return ["intval-updates"]

        def has_permission(self, user, action, pk):
            return user.is_staff

Declaring the class binds it (no registry to fill in): every save and delete of ``model``, from
anywhere, sends ``{"stream": stream, "payload": {"action", "pk", "data", "model"}}`` as a JSON
text frame to the groups ``group_names`` returns, once the write's transaction has committed.
With the one-argument ``group_names`` a save works out, from the groups of the stored row and
of the saved one, which groups see a ``create``, an ``update`` or a ``delete``: an instance
leaving a group is deleted for it, one entering a group is created for it.

Inbound, ``IntegerValueBinding.consumer`` is a consumer for ``{"action", "pk", "data"}``
payloads: a ``WebsocketDemultiplexer`` stream (``consumers = {"intval":
IntegerValueBinding.consumer}``) or a routed channel the demultiplexer forwards to (``mapping``).
It checks ``has_permission(user, action, pk)`` (``message.user``, from
``channel_session_user``, on by default) and runs ``create(data)``, ``update(pk, data)`` or
``delete(pk)`` in a transaction. Clients write the bound fields only (others are ignored);
what they send is validated with the model's ``full_clean`` (the fields they sent). A refusal
(no permission, unknown pk, invalid data, malformed payload) saves nothing and is logged.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.apps import apps
from django.core import serializers
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, ValidationError
from django.core.serializers.base import DeserializationError
from django.db import IntegrityError, router, transaction
from django.db.models.signals import post_delete, post_save, pre_save

from switchboard.binding.coalescing import keep_task
from switchboard.binding.wire import Refused, json_safe, pk_key
from switchboard.classic.auth import channel_session_user
from switchboard.classic.channel import Group
from switchboard.classic.generic import WebsocketMultiplexer
from switchboard.classic.sessions import channel_session
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER

if TYPE_CHECKING:
    from django.db.models import Model

    from switchboard.classic.message import Message

__all__ = ["CREATE", "DELETE", "UPDATE", "Binding", "WebsocketBinding"]

logger = logging.getLogger("switchboard.classic.binding")

CREATE, UPDATE, DELETE = "create", "update", "delete"

# Where pre_save leaves, on the instance, the groups of the row as stored: {binding: groups}.
_BEFORE = "_switchboard_binding_groups_before"
_WEBSOCKET_EVENTS = ("websocket.connect", "websocket.disconnect")
# What a write that cannot be made raises: refused and logged, never raised into the worker.
_REFUSALS = (Refused, ObjectDoesNotExist, ValidationError, DeserializationError, IntegrityError)


def _is_all(fields: Any) -> bool:
    return fields == "__all__" or (
        isinstance(fields, (list, tuple)) and list(fields) == ["__all__"]
    )


def _group_names_take_action(group_names: Callable[..., Any]) -> bool:
    """Whether ``group_names`` is Channels 1.0's ``(instance, action)`` form."""
    try:
        params = list(inspect.signature(group_names).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


class Binding:
    """A model bound to groups (outbound) and to a consumer (inbound); see the module.

    Subclasses supply the wire format: ``encode(stream, payload)``, ``serialize(instance,
    action)`` and ``deserialize(message)`` (``WebsocketBinding`` does).
    """

    #: The bound model (or "app_label.ModelName"); None on an abstract binding.
    model: ClassVar[type[Model] | str | None] = None
    #: The demultiplexer stream the frames carry.
    stream: ClassVar[str | None] = None
    #: Bound fields (``["__all__"]`` for all of them), or ``exclude`` the ones not bound.
    fields: ClassVar[Sequence[str] | str | None] = None
    exclude: ClassVar[Sequence[str] | None] = None
    #: The decorator the inbound consumer runs under (``message.user`` for ``has_permission``).
    channel_session_user: ClassVar[bool] = True
    channel_session: ClassVar[bool] = False
    #: The layer outbound frames go through.
    channel_layer_alias: ClassVar[str] = DEFAULT_CHANNEL_LAYER
    #: "app_label.modelname", set once the model is bound.
    model_label: ClassVar[str | None] = None

    _takes_action: ClassVar[bool] = False

    # Set per use: the keyword arguments of the signal (outbound), or the message (inbound).
    signal_kwargs: dict[str, Any] | None = None
    instance: Model | None = None
    message: Message | None = None
    kwargs: dict[str, Any]
    user: Any = None
    action: str | None = None
    pk: Any = None
    data: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.register()

    # -- declaration ---------------------------------------------------------------------

    @classmethod
    def register(cls) -> None:
        """Bind the class to its model's saves and deletes (done when the class is made)."""
        if cls.model is None:
            return  # abstract: a base for other bindings
        if cls.fields is None and cls.exclude is None:
            raise ImproperlyConfigured(f"{cls.__qualname__} must set fields (or exclude)")
        cls.check_declaration()
        if isinstance(cls.model, str):
            app_label, _, name = cls.model.partition(".")
            if not app_label or not name:
                raise ImproperlyConfigured(
                    f"{cls.__qualname__}.model must be a model or 'app_label.ModelName'"
                )
            # Runs now if the model is loaded, else as soon as it is (declared in models.py).
            apps.lazy_model_operation(cls._bind, (app_label, name.lower()))
        else:
            cls._bind(cls.model)

    @classmethod
    def check_declaration(cls) -> None:
        """Raise ImproperlyConfigured for a declaration that cannot work."""

    @classmethod
    def _bind(cls, model: type[Model]) -> None:
        cls.model = model
        cls.model_label = model._meta.label_lower
        cls._takes_action = _group_names_take_action(cls().group_names)
        # One uid per binding class: a module imported again replaces its receivers.
        uid = f"switchboard.classic.binding:{cls.__module__}.{cls.__qualname__}"
        pre_save.connect(cls._pre_save, sender=model, dispatch_uid=uid, weak=False)
        post_save.connect(cls._post_save, sender=model, dispatch_uid=uid, weak=False)
        post_delete.connect(cls._post_delete, sender=model, dispatch_uid=uid, weak=False)

    @classmethod
    def _model(cls) -> type[Model]:
        if not isinstance(cls.model, type):
            raise ImproperlyConfigured(f"{cls.__qualname__}: model {cls.model!r} is not loaded")
        return cls.model

    @classmethod
    def field_names(cls) -> list[str]:
        """The bound fields' names: what ``serialize_data`` sends and clients may write."""
        opts = cls._model()._meta
        if cls.fields is not None and not _is_all(cls.fields):
            return [cls.fields] if isinstance(cls.fields, str) else list(cls.fields)
        # What Django's serializers write for a model: its own columns and many-to-many.
        names = [f.name for f in [*opts.local_fields, *opts.local_many_to_many] if f.serialize]
        excluded = set(cls.exclude or ()) if cls.fields is None else set()
        return [name for name in names if name not in excluded]

    # -- outbound ------------------------------------------------------------------------

    @classmethod
    def group_names(cls, instance: Model) -> Iterable[str]:
        """Groups told about ``instance`` (none by default). Channels 1.0's form,
        ``group_names(self, instance, action)``, works too."""
        return []

    def _groups(self, instance: Model, action: str) -> set[str]:
        if self._takes_action:
            return set(self.group_names(instance, action))  # type: ignore[call-arg]
        return set(self.group_names(instance))

    @classmethod
    def _pre_save(cls, sender: type[Model], instance: Model, **kwargs: Any) -> None:
        if cls._takes_action:
            return  # the 1.0 form sends each action to its groups: no before and after
        before: set[str] = set()
        if instance.pk is not None:
            using = kwargs.get("using")
            # The stored row, not the instance: its fields may already hold the new values.
            stored = sender._base_manager.using(using).filter(pk=instance.pk).first()
            if stored is not None:
                before = cls()._groups(stored, UPDATE)
        instance.__dict__.setdefault(_BEFORE, {})[cls._key()] = before

    @classmethod
    def _key(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"  # a name: the instance stays picklable

    @classmethod
    def _take_before(cls, instance: Model) -> set[str] | None:
        noted = instance.__dict__.get(_BEFORE)
        if noted is None:
            return None
        before: set[str] | None = noted.pop(cls._key(), None)
        if not noted:
            del instance.__dict__[_BEFORE]
        return before

    @classmethod
    def _post_save(cls, sender: type[Model], instance: Model, created: bool, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, CREATE if created else UPDATE, **kwargs)

    @classmethod
    def _post_delete(cls, sender: type[Model], instance: Model, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, DELETE, **kwargs)

    @classmethod
    def post_change_receiver(cls, instance: Model, action: str, **kwargs: Any) -> None:
        """Send ``action`` on ``instance`` to its groups (signals call it; so may you)."""
        self = cls()
        self.instance = instance
        if cls._takes_action:
            self.send_messages(instance, self._groups(instance, action), action, **kwargs)
            return
        if action == DELETE:
            self.send_messages(instance, self._groups(instance, DELETE), DELETE, **kwargs)
            return
        after = self._groups(instance, action)
        before = cls._take_before(instance)
        if before is None:  # not through save(): nothing known of before
            before = after if action == UPDATE else set()
        # Deletes first, then updates, then creates: a client in two groups ends up right.
        self.send_messages(instance, before - after, DELETE, **kwargs)
        self.send_messages(instance, before & after, UPDATE, **kwargs)
        self.send_messages(instance, after - before, CREATE, **kwargs)

    def send_messages(
        self, instance: Model, group_names: Iterable[str], action: str, **kwargs: Any
    ) -> None:
        """Send ``action`` on ``instance`` to ``group_names`` once the transaction commits."""
        groups = sorted(group_names)
        if not groups:
            return
        self.signal_kwargs = kwargs
        payload = self.serialize(instance, action)  # now: the instance as it was written
        if not payload:
            return
        message = self.encode(self.stream, payload)
        alias = self.channel_layer_alias
        transaction.on_commit(
            lambda: _send_to_groups(alias, groups, message), using=kwargs.get("using")
        )

    @classmethod
    def encode(cls, stream: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        """The group message carrying ``payload``."""
        raise NotImplementedError(f"{cls.__qualname__} must define encode()")

    def serialize(self, instance: Model, action: str) -> dict[str, Any]:
        """The outbound payload ({} sends nothing)."""
        return {}

    def serialize_data(self, instance: Model) -> dict[str, Any]:
        """The bound fields of ``instance`` as JSON types, as Django's serializers write them
        (foreign keys as primary keys, many-to-many as lists of them)."""
        fields = None if self.fields is not None and _is_all(self.fields) else self.field_names()
        data = serializers.serialize("python", [instance], fields=fields)[0]["fields"]
        return json_safe(data)

    # -- inbound -------------------------------------------------------------------------

    @classmethod
    def consumer(cls, message: Message, **kwargs: Any) -> None:
        """The inbound consumer (a demultiplexer stream, or a routed channel)."""
        if message.channel.name in _WEBSOCKET_EVENTS:
            return  # a demultiplexer hands every stream connect and disconnect: nothing to do
        cls.get_handler()(message, **kwargs)

    @classmethod
    def get_handler(cls) -> Callable[..., Any]:
        handler: Callable[..., Any] = cls.trigger_inbound
        if cls.channel_session_user:
            return channel_session_user(handler)
        if cls.channel_session:
            return channel_session(handler)
        return handler

    @classmethod
    def trigger_inbound(cls, message: Message, **kwargs: Any) -> None:
        """Check and run one inbound action; a refusal is logged and saves nothing."""
        self = cls()
        self.message = message
        self.kwargs = kwargs
        self.user = getattr(message, "user", None)
        try:
            self.action, self.pk, self.data = self.deserialize(message)
            if not self.has_permission(self.user, self.action, self.pk):
                raise Refused("forbidden")
            with transaction.atomic(using=router.db_for_write(cls._model())):
                self.run_action(self.action, self.pk, self.data)
        except _REFUSALS as exc:
            reason = exc.body if isinstance(exc, Refused) else f"{type(exc).__name__}: {exc}"
            logger.warning(
                "%s refused %s of pk %r by %s: %s",
                cls.__qualname__,
                self.action,
                self.pk,
                self.user,
                reason,
            )

    def deserialize(self, message: Message) -> tuple[str, Any, Any]:
        """``(action, pk, data)`` from an inbound message."""
        raise NotImplementedError(f"{type(self).__qualname__} must define deserialize()")

    def has_permission(self, user: Any, action: str, pk: Any) -> bool:
        """Whether ``user`` may ``action`` ("create", "update", "delete") the instance
        ``pk``. Refuses everything unless overridden."""
        return False

    def run_action(self, action: str, pk: Any, data: Any) -> None:
        if action == CREATE:
            self.create(data)
        elif action == UPDATE:
            self.update(pk, data)
        elif action == DELETE:
            self.delete(pk)
        else:
            raise Refused("bad_request", detail=f"unknown action {action!r}")

    def create(self, data: Any) -> None:
        instance, many, sent = self._hydrate(None, data)
        instance.full_clean(exclude=self._unsent(sent))
        instance.save()
        self._set_many(instance, many)

    def update(self, pk: Any, data: Any) -> None:
        instance = self._get(pk)
        given, many, sent = self._hydrate(instance.pk, data)
        opts = self._model()._meta
        for name in sent:
            field = opts.get_field(name)
            if not field.many_to_many:
                setattr(instance, field.attname, getattr(given, field.attname))
        instance.full_clean(exclude=self._unsent(sent))
        instance.save()
        self._set_many(instance, many)

    def delete(self, pk: Any) -> None:
        self._get(pk).delete()

    def _get(self, pk: Any) -> Model:
        try:
            return self._model()._default_manager.get(pk=pk)
        except (ObjectDoesNotExist, ValueError, TypeError, ValidationError):
            raise Refused("not_found", pk=pk) from None

    def _hydrate(self, pk: Any, data: Any) -> tuple[Model, dict[str, list[Any]], list[str]]:
        """``data`` (bound fields only) as an unsaved instance, through Django's deserializer
        (values converted as a fixture's are), its many-to-many values, and the names sent."""
        if not isinstance(data, dict):
            raise Refused("bad_request", detail='"data" must be an object')
        bound = set(self.field_names())
        sent = {name: value for name, value in data.items() if name in bound}
        record = {"model": self.model_label, "pk": pk, "fields": sent}
        found = next(iter(serializers.deserialize("python", [record])))
        return found.object, found.m2m_data, list(sent)

    def _unsent(self, sent: list[str]) -> set[str]:
        # Only what the client sent is validated: fields it left alone keep their values.
        opts = self._model()._meta
        return {f.name for f in [*opts.fields, *opts.many_to_many] if f.name not in sent}

    def _set_many(self, instance: Model, many: dict[str, list[Any]]) -> None:
        for name, values in many.items():
            getattr(instance, name).set(values)


def _send_to_groups(alias: str, groups: list[str], message: dict[str, Any]) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    try:
        if loop is None:
            for name in groups:
                Group(name, alias=alias).send(message, immediately=True)
        else:
            # Saved from an event loop's own thread: async_to_sync cannot run here.
            layer = Group(groups[0], alias=alias).channel_layer
            keep_task(loop.create_task(_group_send_all(layer, groups, message)))
    except Exception:
        # The write is committed whatever happens here: report it, never undo or raise.
        logger.exception("Could not send a binding frame to %s", ", ".join(groups))


async def _group_send_all(layer: Any, groups: list[str], message: dict[str, Any]) -> None:
    for name in groups:
        await layer.group_send(name, message)


class WebsocketBinding(Binding):
    """A binding speaking the demultiplexer's JSON frames (see the module)."""

    @classmethod
    def check_declaration(cls) -> None:
        if not isinstance(cls.stream, str) or not cls.stream:
            raise ImproperlyConfigured(f"{cls.__qualname__} must set stream")

    @classmethod
    def encode(cls, stream: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        return WebsocketMultiplexer.encode(stream or "", payload)

    def serialize(self, instance: Model, action: str) -> dict[str, Any]:
        return {
            "action": action,
            "pk": pk_key(instance.pk),
            "data": self.serialize_data(instance),
            "model": self.model_label,
        }

    def deserialize(self, message: Message) -> tuple[str, Any, Any]:
        if "text" in message:  # a demultiplexer stream (1.1): the frame's payload as text
            try:
                body = json.loads(message["text"])
            except (TypeError, ValueError):
                raise Refused("bad_request", detail="payload is not JSON") from None
        else:  # a mapped channel (1.0): the payload itself, plus reply_channel
            body = message.content
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            raise Refused("bad_request", detail='payload must be an object with an "action"')
        return body["action"], body.get("pk"), body.get("data")
