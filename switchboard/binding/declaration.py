"""What a binding declares: its model, stream and fields, checked and registered when the
class is made, and the hooks deciding what is published, to whom, and who may write.

The synchronous hooks (``group_names``, ``serialize``, ``get_form``, ``get_queryset``) run in
the saving thread and in the thread doing a write; ``has_permission`` and ``can_view`` are
coroutines here, functions run in a thread in ``WebsocketBinding``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.forms import BaseForm, ModelForm, modelform_factory

from switchboard.binding import publish
from switchboard.binding.wire import group_name, json_safe, pk_key
from switchboard.db import database_sync_to_async
from switchboard.generic.websocket import AsyncJsonWebsocketConsumer

__all__ = ["BindingDeclaration"]

_PERMISSION_OF = {"subscribe": "view", "create": "add", "update": "change", "delete": "delete"}
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")


class BindingDeclaration(AsyncJsonWebsocketConsumer):
    """The declared part of a binding (see :class:`~switchboard.binding.AsyncWebsocketBinding`)."""

    # Gateway mode: subscriptions come from the client's frames, which a resumed connect
    # cannot rebuild from the scope; closed with 1012 instead, and the client subscribes again.
    movable = False

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

    @property
    def user(self) -> Any:
        user = self.scope.get("user")
        if user is None:
            from django.contrib.auth.models import AnonymousUser  # needs the app registry

            user = AnonymousUser()
        return user
