"""Plain counters of this process's transport sessions, read by
:mod:`switchboard.metrics.transports` at scrape time (possibly from another thread)."""

from __future__ import annotations

from collections import Counter

__all__ = ["TransportStats", "stats"]


class TransportStats:
    """Per transport (``"sse"``, ``"poll"``): sessions open now, and running totals."""

    def __init__(self) -> None:
        self.sessions_open: Counter[str] = Counter()
        self.frames_out: Counter[str] = Counter()  # frames the applications sent
        self.frames_in: Counter[str] = Counter()  # frames the clients POSTed
        self.overflows: Counter[str] = Counter()  # sessions ended because a buffer was full


stats = TransportStats()
