"""``SWITCHBOARD_TRANSPORTS``: which fallback transports are on, and their limits.

Read at each request (not once at import), so ``override_settings`` applies to a running
server; the values are checked by the ``switchboard.E040`` system check
(:mod:`switchboard.transports.checks`), and a request under a malformed setting falls back to
the defaults for the keys that are wrong rather than failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from switchboard.integration.settings import closest_name

__all__ = ["DEFAULTS", "TRANSPORTS", "TransportSettings", "problems", "transport_settings"]

TRANSPORTS = ("sse", "poll")

DEFAULTS: dict[str, Any] = {
    "ENABLED": list(TRANSPORTS),
    "HEARTBEAT": 15,  # seconds of silence on an SSE stream before a comment line
    "POLL_TIMEOUT": 25,  # seconds a long-poll is held open without frames
    # Seconds after POLL_TIMEOUT a poll session may go without a poll before it ends. Mostly
    # for tests, which cannot wait 10 s; the client polls again at once in normal operation.
    "POLL_GRACE": 10,
    # Above what one recovery replays at once (ReliableMixin.max_recovery, 1000, plus the
    # requested history): a poll session holds a whole replay until the next poll.
    "MAX_BUFFERED_FRAMES": 4096,
    "MAX_BUFFERED_BYTES": 1 << 20,
    "MAX_POST_BYTES": 1 << 20,
}

_NUMBERS = ("HEARTBEAT", "POLL_TIMEOUT", "POLL_GRACE")
_COUNTS = ("MAX_BUFFERED_FRAMES", "MAX_BUFFERED_BYTES", "MAX_POST_BYTES")


@dataclass(frozen=True)
class TransportSettings:
    enabled: frozenset[str]
    heartbeat: float
    poll_timeout: float
    poll_grace: float
    max_buffered_frames: int
    max_buffered_bytes: int
    max_post_bytes: int

    @property
    def poll_idle(self) -> float:
        """Seconds without a waiting poll after which a poll session ends."""
        return self.poll_timeout + self.poll_grace


def _valid(key: str, value: Any) -> str | None:
    """Why ``value`` is wrong for ``key``, or None."""
    if key == "ENABLED":
        if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
            return f"ENABLED must be a list of transports ({', '.join(TRANSPORTS)})"
        unknown = [item for item in value if item not in TRANSPORTS]
        if unknown:
            return f"ENABLED names unknown transports {unknown!r} (known: {', '.join(TRANSPORTS)})"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{key} must be a number, not {type(value).__name__}"
    if key in _COUNTS and (not isinstance(value, int) or value < 1):
        return f"{key} must be a whole number of at least 1"
    if key in _NUMBERS and value <= 0 and key != "POLL_GRACE":
        return f"{key} must be more than 0 seconds"
    if key == "POLL_GRACE" and value < 0:
        return "POLL_GRACE must be 0 seconds or more"
    return None


def problems(value: Any) -> list[str]:
    """Every mistake in a ``SWITCHBOARD_TRANSPORTS`` value, as sentences (empty: fine)."""
    if not isinstance(value, Mapping):
        return [f"SWITCHBOARD_TRANSPORTS must be a dict, not {type(value).__name__}"]
    found = []
    for key, item in value.items():
        if key not in DEFAULTS:
            close = closest_name(key, DEFAULTS)
            hint = f"; did you mean {close!r}?" if close else ""
            found.append(f"SWITCHBOARD_TRANSPORTS has an unknown key {key!r}{hint}")
            continue
        error = _valid(key, item)
        if error:
            found.append(f"SWITCHBOARD_TRANSPORTS: {error}")
    return found


def transport_settings() -> TransportSettings:
    """The setting now, with defaults for missing (or malformed) keys."""
    raw = getattr(django_settings, "SWITCHBOARD_TRANSPORTS", None)
    given = raw if isinstance(raw, Mapping) else {}
    values = {
        key: given[key] if key in given and _valid(key, given[key]) is None else default
        for key, default in DEFAULTS.items()
    }
    return TransportSettings(
        enabled=frozenset(values["ENABLED"]),
        heartbeat=float(values["HEARTBEAT"]),
        poll_timeout=float(values["POLL_TIMEOUT"]),
        poll_grace=float(values["POLL_GRACE"]),
        max_buffered_frames=values["MAX_BUFFERED_FRAMES"],
        max_buffered_bytes=values["MAX_BUFFERED_BYTES"],
        max_post_bytes=values["MAX_POST_BYTES"],
    )
