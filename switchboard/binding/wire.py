"""What bindings put on the layer and the socket: JSON-safe values, group names, filters,
the inbound actions and the answers to them.

Kept apart from Django signals and consumers: pure functions, easy to test and to reason about.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

__all__ = ["ACTIONS", "Refused", "answer", "group_name", "json_safe", "matches", "pk_key"]

# What a client may ask of a binding (``{"action": ...}``).
ACTIONS = ("subscribe", "unsubscribe", "create", "update", "delete")

_SCALARS = (str, int, float, bool, type(None))
_encoder = DjangoJSONEncoder()
_GROUP_SAFE = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")


def json_safe(value: Any) -> Any:
    """``value`` as JSON types only (dates, decimals, UUIDs as Django's JSON encoder writes
    them), so it crosses msgpack (Redis) and JSON (the socket) unchanged."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return _encoder.default(value)


def pk_key(pk: Any) -> int | str:
    """The form a primary key takes in events and subscriptions: an int, else a string."""
    if isinstance(pk, int) and not isinstance(pk, bool):
        return pk
    return str(pk)


def group_name(stream: str, pk: Any = None) -> str:
    """The layer group for a whole stream (``pk`` None) or one instance of it.

    Primary keys outside the group-name alphabet (or long ones) are hashed.
    """
    if pk is None:
        return f"binding.{stream}"
    text = str(pk)
    if not _GROUP_SAFE.match(text):
        text = "h" + hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"binding.{stream}.{text}"


def matches(filter_: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether serialized ``data`` has every ``field: value`` of the filter (exact match)."""
    return all(field in data and data[field] == value for field, value in filter_.items())


class Refused(Exception):
    """An inbound action answered with ``ok: false`` (``error`` and details in ``body``)."""

    def __init__(self, error: str, **body: Any) -> None:
        super().__init__(error)
        self.body = {"error": error, **body}


def answer(action: Any, request_id: Any, ok: bool, body: dict[str, Any]) -> dict[str, Any]:
    """The answer to an inbound action, echoing its ``request_id`` when it had one."""
    message = {"response_to": action, "ok": ok, **body}
    if request_id is not None:
        message["request_id"] = request_id
    return message
