"""What bindings put on the layer and the socket: JSON-safe values, group names, filters.

Kept apart from Django signals and consumers: pure functions, easy to test and to reason about.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

__all__ = ["group_name", "json_safe", "matches", "pk_key"]

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
