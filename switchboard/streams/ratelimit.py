"""A token bucket per key, in this process: the publish API's rate limit.

Each key's bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; a
publication takes one. A full bucket lets a burst through at once, then the key is held to
``rate`` on average. The clock is monotonic (a wall clock stepping back would refill or drain
buckets) and injectable, so tests move time by hand.

In-process only: with ``serve --workers N`` (or N machines) each process has buckets of its
own, so a key's effective limit is up to N times the setting.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["Clock", "TokenBuckets", "retry_after_seconds", "shared_buckets", "use_clock"]

Clock = Callable[[], float]


class TokenBuckets:
    """Buckets by key. Thread-safe: sync callers in several threads may share one."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = burst
        self.clock = clock
        # key -> (tokens, when they were counted). Keys are the configured API keys only
        # (callers authenticate first), so this never grows beyond that list.
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> float:
        """Take one token for ``key``: ``0.0`` when granted, else the seconds until one is
        there (nothing is taken then)."""
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            # Counted from the latest time seen: a clock that went back refills nothing.
            tokens = min(float(self.burst), tokens + max(0.0, now - then) * self.rate)
            now = max(now, then)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after_seconds(wait: float) -> int:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


# The publish API's buckets in this process, made anew when RATE or BURST change.
_shared: TokenBuckets | None = None
_shared_clock: Clock = time.monotonic
_shared_lock = threading.Lock()


def shared_buckets(rate: float, burst: int) -> TokenBuckets:
    """This process's buckets for ``rate`` and ``burst`` (kept while those stay the same)."""
    global _shared
    with _shared_lock:
        current = _shared
        if current is None or (current.rate, current.burst) != (float(rate), burst):
            current = _shared = TokenBuckets(rate, burst, clock=_shared_clock)
        return current


def use_clock(clock: Clock) -> None:
    """Run the shared buckets on ``clock`` from now on, all of them full again (for tests:
    ``use_clock(fake)``, then ``use_clock(time.monotonic)``)."""
    global _shared, _shared_clock
    with _shared_lock:
        _shared_clock, _shared = clock, None
