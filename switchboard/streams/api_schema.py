"""What the publish API accepts: the request body's shape, checked field by field.

Kept apart from the view (no I/O here), so the command line (``switchboard publish`` without
``--url``) judges a publication exactly as the API does. :data:`PUBLICATION_SCHEMA` is the
same rules as a JSON Schema document, the one the documentation shows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from switchboard.streams.names import validate_event_name, validate_stream_name

__all__ = [
    "MAX_DATA_DEPTH",
    "PUBLICATION_SCHEMA",
    "Publication",
    "PublicationError",
    "parse_json",
    "parse_publication",
]

# Deeper JSON is refused: the layers' msgpack encoding stops at 511 levels, and nothing a
# page renders needs more than a few.
MAX_DATA_DEPTH = 64
# Integers msgpack can carry (int64 .. uint64); larger ones would fail in the layer instead.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# A channel layer group name (switchboard.layers.base), matched in full: no trailing newline.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,99}")

PUBLICATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Switchboard publication",
    "oneOf": [
        {
            "description": "A publication on a stream (signed streams, SSE, htmx).",
            "type": "object",
            "required": ["stream", "data"],
            "additionalProperties": False,
            "properties": {
                "stream": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": "the stream's name: printable characters",
                },
                "data": {"description": "any JSON value: a string is sent as it is"},
                "event": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    "pattern": "^(?!sb\\.)",
                    "description": "the SSE event type (htmx sse-swap), printable characters; "
                    "default message",
                },
            },
        },
        {
            "description": "A publication on a reliable topic (RealtimeConsumer subscribers).",
            "type": "object",
            "required": ["topic", "data"],
            "additionalProperties": False,
            "properties": {
                "topic": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,99}$"},
                "data": {"type": "object"},
            },
        },
    ],
}


@dataclass(frozen=True)
class Publication:
    """A checked request: ``stream`` or ``topic`` (never both), its data and event."""

    data: Any
    stream: str | None = None
    topic: str | None = None
    event: str | None = None


class PublicationError(ValueError):
    """The request body breaks the schema; ``field`` names where."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _data_problem(value: Any) -> tuple[str, str] | None:
    """Where ``value`` cannot be carried (``(path, why)``), walking it without recursion."""
    stack: list[tuple[Any, str, int]] = [(value, "data", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_DATA_DEPTH:
            return path, f"nested deeper than {MAX_DATA_DEPTH} levels"
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, int) and not isinstance(item, bool):
            if not _INT_MIN <= item <= _INT_MAX:
                return path, "integer out of range (64 bits)"
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """``body`` as JSON, strictly: UTF-8, no NaN or Infinity (a browser's ``JSON.parse``
    would choke on them later). ``ValueError`` when it is not; ``RecursionError`` when nested
    beyond what the parser can follow."""
    return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite)


def _name_problem(validate: Any, name: Any) -> str | None:
    try:
        validate(name)
    except ValueError as exc:  # InvalidStreamName
        return str(exc)
    return None


def parse_publication(body: Any) -> Publication:
    """``body`` (parsed JSON) as a :class:`Publication`, or :class:`PublicationError`."""
    if not isinstance(body, dict):
        raise PublicationError("(body)", "must be a JSON object")
    has_stream, has_topic = "stream" in body, "topic" in body
    if has_stream and has_topic:
        raise PublicationError("topic", "give either stream or topic, not both")
    if not has_stream and not has_topic:
        raise PublicationError("stream", "required (or topic)")
    allowed = {"stream", "data", "event"} if has_stream else {"topic", "data"}
    for name in body:
        if name not in allowed:
            why = "only a stream publication has an event" if name == "event" else "unknown field"
            raise PublicationError(name, why)
    if "data" not in body:
        raise PublicationError("data", "required")
    data = body["data"]
    problem = _data_problem(data)
    if problem is not None:
        raise PublicationError(*problem)
    if has_topic:
        topic = body["topic"]
        if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
            raise PublicationError(
                "topic", "must be 1 to 99 ASCII letters, digits, hyphens, underscores or periods"
            )
        if not isinstance(data, dict):
            raise PublicationError("data", "must be a JSON object for a topic")
        return Publication(data=data, topic=topic)
    stream, event = body["stream"], body.get("event")
    stream_problem = _name_problem(validate_stream_name, stream)
    if stream_problem is not None:
        raise PublicationError("stream", stream_problem)
    event_problem = _name_problem(validate_event_name, event) if "event" in body else None
    if event_problem is not None:
        raise PublicationError("event", event_problem)
    return Publication(data=data, stream=stream, event=event)
