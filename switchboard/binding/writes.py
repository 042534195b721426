"""Inbound writes: creates, updates and deletes sent by the client, checked, validated by the
binding's form and applied in a transaction (the save then publishes like any other).

Updates of one instance arriving faster than ``coalesce_window`` are merged
(:class:`~switchboard.binding.coalescing.PendingUpdates`); fields an update does not name keep
their values, fields a create does not name take the model's defaults.
"""

from __future__ import annotations

from typing import Any

from django.db import router, transaction
from django.forms import model_to_dict

from switchboard.binding.coalescing import PendingUpdate, PendingUpdates
from switchboard.binding.subscriptions import BindingSubscriptions
from switchboard.binding.wire import Refused, answer, pk_key
from switchboard.db import database_sync_to_async

__all__ = ["BindingWrites"]


class BindingWrites(BindingSubscriptions):
    """The ``create``, ``update`` and ``delete`` actions (see the module's docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._updates = PendingUpdates(self._write_pending, lambda: self.coalesce_window)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # Updates the client sent are applied even though it left before the window closed.
        await self._updates.flush_all()
        await super().websocket_disconnect(message)

    async def _create(self, content: dict[str, Any], request_id: Any) -> dict[str, Any]:
        data = self._data_of(content)
        if not await self._permitted("create", None):
            raise Refused("forbidden")
        return await self._write("create", None, data)

    async def _delete(self, content: dict[str, Any], request_id: Any) -> dict[str, Any]:
        pk = self._pk_of(content)
        if not await self._permitted("delete", pk):
            raise Refused("forbidden")
        self._updates.drop(pk)  # an update still waiting would only find it gone
        return await self._write("delete", pk, None)

    async def _update(self, content: dict[str, Any], request_id: Any) -> dict[str, Any] | None:
        pk = self._pk_of(content)
        data = self._data_of(content)
        if not await self._permitted("update", pk):
            raise Refused("forbidden")
        # None: answered later, once the update waiting for the window to end is written.
        if self._updates.merge(pk, data, request_id):
            return None
        if self._updates.hold(pk, data, request_id):
            return None
        return await self._write("update", pk, data)

    async def _write_pending(self, pk: Any, pending: PendingUpdate) -> None:
        try:
            body, ok = await self._write("update", pk, pending.data), True
        except Refused as refused:
            body, ok = refused.body, False
        for request_id in pending.request_ids:
            await self.send_json(answer("update", request_id, ok, body))

    def _data_of(self, content: dict[str, Any]) -> dict[str, Any]:
        data = content.get("data")
        if not isinstance(data, dict):
            raise Refused("bad_request", detail='"data" must be an object')
        return data

    async def _write(self, action: str, pk: Any, data: dict[str, Any] | None) -> dict[str, Any]:
        return await database_sync_to_async(self._write_sync)(action, pk, data)

    def _write_sync(self, action: str, pk: Any, data: dict[str, Any] | None) -> dict[str, Any]:
        with transaction.atomic(using=router.db_for_write(self.model)):
            instance = None
            if action != "create":
                instance = self.get_queryset().filter(pk=pk).first()
                if instance is None:
                    raise Refused("not_found", pk=pk)
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
                raise Refused("invalid", errors=form.errors.get_json_data())
            saved = form.save()
            return {"pk": pk_key(saved.pk), "data": self.serialize(saved)}
