"""Server-sent events framing (the WHATWG ``text/event-stream`` format): bytes out, no I/O.

An event is ``field: value`` lines ended by a blank line; a value cannot hold a line break,
so data with line breaks becomes several ``data:`` lines (the browser joins them with
``\\n``), and ``id``/``event`` values lose theirs. A line starting with ``:`` is a comment,
which browsers ignore: the heartbeat.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

__all__ = [
    "frame_event",
    "binary_event",
    "close_event",
    "comment",
    "event",
    "session_event",
]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(value: str) -> str:
    # id and event values are one line: a break would start a field of the attacker's choice.
    return _LINE_BREAK.sub(" ", value).replace("\x00", "")


def event(data: str, *, name: str | None = None, id: str | None = None) -> bytes:
    """One event; ``name`` ``None`` is the default type (``message``)."""
    lines = []
    if id is not None:
        lines.append(f"id: {_field(id)}")
    if name is not None:
        lines.append(f"event: {_field(name)}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str = "hb") -> bytes:
    return f": {_field(text)}\n\n".encode()


def binary_event(data: bytes) -> bytes:
    return event(base64.b64encode(data).decode("ascii"), name="sb.binary")


def session_event(token: str, heartbeat: float) -> bytes:
    body = {"session": token, "transport": "sse", "heartbeat": _number(heartbeat)}
    return event(json.dumps(body), name="sb.session")


def close_event(code: int, reason: str) -> bytes:
    return event(json.dumps({"code": code, "reason": reason}), name="sb.close")


def frame_event(frame: str | bytes | dict[str, Any]) -> bytes:
    """A buffered frame: text, bytes, or an ``sb.sse.event`` message rendered as-is."""
    if isinstance(frame, str):
        return event(frame)
    if isinstance(frame, bytes):
        return binary_event(frame)
    return event(str(frame.get("data", "")), name=frame.get("event"), id=frame.get("id"))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
