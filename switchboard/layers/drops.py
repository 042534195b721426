"""Counting the messages a layer drops where no sender can be told, and logging the counts.

Two kinds: ``full`` (the receiving channel was at capacity when the message arrived: a group
member, or a process channel whose sender's PUBLISH had already succeeded) and ``expired``
(nobody received it within ``expiry``). Each drop is counted at once; the counts are logged at
most once per ``interval`` seconds, a warning naming the latest channel of each kind. Drops
that follow a log line are reported when the interval ends (a loop timer), not left waiting
for a further drop that may never come.

Layers may count other kinds too (the IPC layer's ``lost``: messages its hub process held for
a receiver when it died); such a kind appears in ``totals`` and in the log once it happens.
"""

from __future__ import annotations

import asyncio
import logging
import time

__all__ = ["DropCounter"]

KINDS = ("full", "expired")


class DropCounter:
    """``totals``: drops since the layer was made, by kind (for monitoring and tests)."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self.totals = dict.fromkeys(KINDS, 0)
        self._pending = dict.fromkeys(KINDS, 0)
        self._latest: dict[str, str | None] = dict.fromkeys(KINDS)
        self._last_log = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    def note(self, kind: str, channel: str | None = None, count: int = 1) -> None:
        self.totals[kind] = self.totals.get(kind, 0) + count
        self._pending[kind] = self._pending.get(kind, 0) + count
        if channel is not None:
            self._latest[kind] = channel
        wait = self._last_log + self.interval - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # logged with the next drop after the interval
            self._timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Log what was counted since the last log line, if anything."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending
        if not any(pending.values()):
            return
        since = time.monotonic() - self._last_log
        window = f"in the last {since:.0f}s" if since != float("inf") else "so far"
        others = "".join(
            f"; {count} {kind} (latest: {self._latest.get(kind) or '-'})"
            for kind, count in pending.items()
            if kind not in KINDS and count
        )
        self.logger.warning(
            "Channel layer dropped %d message(s) for full channels (latest: %s) and %d "
            "unread past their expiry (latest: %s) %s%s",
            pending["full"],
            self._latest["full"] or "-",
            pending["expired"],
            self._latest["expired"] or "-",
            window,
            others,
        )
        self._last_log = time.monotonic()
        self._pending = dict.fromkeys(KINDS, 0)
        self._latest = dict.fromkeys(KINDS)
