"""Stream names, and the reliable topic (layer group) each one is published on.

A stream name is any string of 1 to :data:`MAX_STREAM_NAME` printable characters (Python's
``str.isprintable``: no control, format or line-separator characters; the space is allowed):
``"news"``, ``"room 12"``, ``"inbox.user.42"``, ``"Bücher"``. Group names on the channel layers
are narrower (ASCII letters, digits, ``-``, ``_`` and ``.``, under 100 characters), so
:func:`stream_topic` maps a name to a topic that every layer accepts:

* a name made only of those characters and at most :data:`MAX_PLAIN_NAME` long keeps its
  text: ``"news"`` -> ``"sbs.news"``;
* any other name is hashed: ``"sbs-h."`` followed by the 64 hex digits of the SHA-256 of the
  name's UTF-8 bytes (``"Bücher"`` -> ``"sbs-h.6f1c..."``, 70 characters).

The two forms cannot collide (``sbs.`` versus ``sbs-h.``), nor can a stream's topic collide
with a topic chosen by hand unless that topic deliberately starts with ``sbs``: signed streams
live in a namespace of their own, so a token for a stream never reaches, say, a task's
progress topic (``task.<id>``).

Event names (the SSE ``event:`` field, htmx's ``sse-swap``) are 1 to :data:`MAX_EVENT_NAME`
printable characters not starting with ``sb.``, which names the transport's own control
events (``sb.session``, ``sb.close``, ``sb.resync``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

__all__ = [
    "MAX_EVENT_NAME",
    "MAX_PLAIN_NAME",
    "MAX_STREAM_NAME",
    "InvalidStreamName",
    "stream_topic",
    "validate_event_name",
    "validate_stream_name",
]

MAX_STREAM_NAME = 200
MAX_EVENT_NAME = 100
PLAIN_PREFIX = "sbs."
HASHED_PREFIX = "sbs-h."
# Group names must stay under 100 characters on every layer.
MAX_PLAIN_NAME = 99 - len(PLAIN_PREFIX)

_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+")


class InvalidStreamName(ValueError):
    """A stream or event name outside the rules of :mod:`switchboard.streams.names`."""


def validate_stream_name(name: Any) -> str:
    """``name`` if it is a valid stream name, else :class:`InvalidStreamName` saying why."""
    if not isinstance(name, str):
        raise InvalidStreamName(f"a stream name is a str, not {type(name).__name__}")
    if not 0 < len(name) <= MAX_STREAM_NAME:
        raise InvalidStreamName(f"a stream name has 1 to {MAX_STREAM_NAME} characters")
    if not name.isprintable():
        raise InvalidStreamName(
            "a stream name has printable characters only (no control characters or line breaks)"
        )
    return name


def validate_event_name(event: Any) -> str:
    """``event`` if it is a valid event name, else :class:`InvalidStreamName` saying why."""
    if not isinstance(event, str):
        raise InvalidStreamName(f"an event name is a str, not {type(event).__name__}")
    if not 0 < len(event) <= MAX_EVENT_NAME or not event.isprintable():
        raise InvalidStreamName(
            f"an event name has 1 to {MAX_EVENT_NAME} printable characters (no line breaks)"
        )
    if event.startswith("sb."):
        raise InvalidStreamName("event names starting with 'sb.' are Switchboard's own")
    return event


def stream_topic(name: str) -> str:
    """The reliable topic (and layer group) that carries stream ``name`` (see the module
    docstring: readable for plain names, a SHA-256 for the others)."""
    validate_stream_name(name)
    if len(name) <= MAX_PLAIN_NAME and _PLAIN.fullmatch(name):
        return PLAIN_PREFIX + name
    return HASHED_PREFIX + hashlib.sha256(name.encode("utf-8")).hexdigest()
