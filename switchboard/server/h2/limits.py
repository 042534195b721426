"""Per-connection limits on what a client may make an HTTP/2 server do, without I/O.

Each frame kind that costs the server work or a reply without giving the application
anything (PING, SETTINGS, RST_STREAM, empty DATA, refused streams) draws from a token bucket;
a client that empties one is abusive (rapid reset is CVE-2023-44487, the others are the
floods of CVE-2019-9512/9515/9518) and gets GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


class RateLimit:
    """A token bucket: ``burst`` events at once, refilled at ``rate`` per second."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def allow(self, now: float | None = None) -> bool:
        """Take one token; False when there is none (the caller gives up on the client)."""
        if now is None:
            now = time.monotonic()
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True


@dataclass(frozen=True)
class FloodLimits:
    """Rates (per second) and bursts per connection. Browsers send a handful of PINGs and
    SETTINGS per connection and cancel streams now and then: far below these."""

    ping_rate: float = 20.0
    ping_burst: float = 100.0
    settings_rate: float = 20.0
    settings_burst: float = 100.0
    # Streams reset by the client, or refused by us, while the application may still run.
    reset_rate: float = 100.0
    reset_burst: float = 200.0
    # DATA frames without payload or END_STREAM (CVE-2019-9518).
    empty_rate: float = 100.0
    empty_burst: float = 200.0


class FloodGuard:
    """The buckets of one connection. Each ``*_ok`` returns False once the client overdid it."""

    __slots__ = ("ping", "settings", "reset", "empty")

    def __init__(self, limits: FloodLimits | None = None) -> None:
        lim = limits or FloodLimits()
        self.ping = RateLimit(lim.ping_rate, lim.ping_burst)
        self.settings = RateLimit(lim.settings_rate, lim.settings_burst)
        self.reset = RateLimit(lim.reset_rate, lim.reset_burst)
        self.empty = RateLimit(lim.empty_rate, lim.empty_burst)
