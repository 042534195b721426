"""Limits on what a client may make an HTTP/2 server do, without I/O.

Per connection (``FloodGuard``): each frame kind that costs the server work or a reply without
giving the application anything (PING, SETTINGS, RST_STREAM, empty DATA, refused streams,
WINDOW_UPDATE, PRIORITY) draws from a token bucket; a client that empties one is abusive
(rapid reset is CVE-2023-44487, the others are the floods of CVE-2019-9512/9515/9518) and gets
GOAWAY ENHANCE_YOUR_CALM.

Per process (``H2Budgets``, one per server): the request-body window that connections get
beyond the protocol's first 64 KiB (``WindowBudget``), and the streams that clients reset
before their response, per client address and in all (``ResetBudget``), so that what one
connection may not do cannot be done by reconnecting.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


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

    def available(self, now: float) -> float:
        """The tokens there are at ``now``, none taken."""
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)


class EarnedLimit(RateLimit):
    """A token bucket that the server's own sending also fills: ``earn(n)`` adds ``n`` tokens,
    up to ``cap``, above the ``burst`` that time alone refills to. For frames a client sends
    in answer to ours (WINDOW_UPDATE for the DATA it read), whose honest number follows what
    we sent rather than the clock."""

    __slots__ = ("cap",)

    def __init__(self, rate: float, burst: float, cap: float) -> None:
        RateLimit.__init__(self, rate, burst)
        self.cap = cap

    def earn(self, n: float) -> None:
        tokens = self.tokens + n
        self.tokens = tokens if tokens < self.cap else self.cap

    def allow(self, now: float | None = None) -> bool:
        if now is None:
            now = time.monotonic()
        tokens = self.tokens
        if tokens < self.burst:  # the clock refills up to burst; earned tokens above it stay
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
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
    # WINDOW_UPDATE: a client gives window back as it reads what we send, nghttp2 and browsers
    # once per ~32 KiB, the most eager once per DATA frame on the stream and again on the
    # connection. So each DATA frame we send earns two (up to the cap), each stream opened
    # two more, and the clock refills a flat allowance on top.
    window_rate: float = 100.0
    window_burst: float = 1000.0
    window_per_frame: float = 2.0
    window_cap: float = 20000.0
    # PRIORITY (deprecated by RFC 9113 section 5.3.2; some clients still send one per stream
    # opened, or a few to build a tree): each stream opened earns two.
    priority_rate: float = 100.0
    priority_burst: float = 1000.0
    priority_cap: float = 20000.0


_DEFAULT_LIMITS = FloodLimits()


class FloodGuard:
    """The buckets of one connection. ``allow()`` on one is False once the client overdid it."""

    __slots__ = ("ping", "settings", "reset", "empty", "window", "priority", "window_per_frame")

    def __init__(self, limits: FloodLimits | None = None) -> None:
        lim = limits or _DEFAULT_LIMITS
        self.ping = RateLimit(lim.ping_rate, lim.ping_burst)
        self.settings = RateLimit(lim.settings_rate, lim.settings_burst)
        self.reset = RateLimit(lim.reset_rate, lim.reset_burst)
        self.empty = RateLimit(lim.empty_rate, lim.empty_burst)
        self.window = EarnedLimit(lim.window_rate, lim.window_burst, lim.window_cap)
        self.priority = EarnedLimit(lim.priority_rate, lim.priority_burst, lim.priority_cap)
        self.window_per_frame = lim.window_per_frame

    def stream_opened(self) -> None:
        """A stream the application serves: room for its WINDOW_UPDATEs and PRIORITY."""
        self.window.earn(2)
        self.priority.earn(2)

    def data_sent(self) -> None:
        """One DATA frame went out: room for the client's WINDOW_UPDATEs that answer it."""
        self.window.earn(self.window_per_frame)


# -- per process ------------------------------------------------------------------------------


class WindowBudget:
    """The request-body window HTTP/2 connections get beyond the 65,535 bytes RFC 9113 gives
    every connection before any WINDOW_UPDATE, shared by all connections of a process: a
    connection borrows what it is given and gives it back when it closes. So body buffered
    unread is at most 64 KiB per connection plus this budget, however many connections."""

    __slots__ = ("available",)

    def __init__(self, size: int) -> None:
        self.available = max(size, 0)

    def borrow(self, wanted: int) -> int:
        """Up to ``wanted`` bytes of window, as much as is left (maybe 0)."""
        got = wanted if wanted < self.available else self.available
        self.available -= got
        return got

    def give_back(self, size: int) -> None:
        self.available += size


@dataclass(frozen=True)
class ResetLimits:
    """Streams reset by their client before their response (work started for nothing), over
    all connections of a process: per client address, and in all."""

    address_rate: float = 100.0
    address_burst: float = 400.0
    total_rate: float = 1000.0
    total_burst: float = 4000.0
    # While the process-wide budget is spent, an address that reset a stream this many
    # seconds ago or less gets its new streams refused.
    penalty: float = 10.0
    addresses: int = 10000  # remembered at most; the longest quiet forgotten first


class _Address:
    __slots__ = ("bucket", "last")

    def __init__(self, bucket: RateLimit, last: float) -> None:
        self.bucket = bucket
        self.last = last


class ResetBudget:
    """Process-wide budget for streams reset before their response (CVE-2023-44487 spread
    over many connections, each under its own limit, or over many addresses).

    ``reset(address)`` counts one and says whether the address (and the process) are still
    within budget; ``admits(address)`` says whether a new stream from it may start its
    application. Addresses that never reset a stream cost a dictionary miss."""

    __slots__ = ("limits", "total", "addresses")

    def __init__(self, limits: ResetLimits | None = None) -> None:
        lim = self.limits = limits or ResetLimits()
        self.total = RateLimit(lim.total_rate, lim.total_burst)
        self.addresses: OrderedDict[str, _Address] = OrderedDict()

    def reset(self, address: str, now: float | None = None) -> bool:
        if now is None:
            now = time.monotonic()
        entry = self.addresses.get(address)
        if entry is None:
            lim = self.limits
            if len(self.addresses) >= lim.addresses:
                self.addresses.popitem(last=False)
            bucket = RateLimit(lim.address_rate, lim.address_burst)
            bucket.stamp = now
            entry = self.addresses[address] = _Address(bucket, now)
        else:
            self.addresses.move_to_end(address)
            entry.last = now
        own = entry.bucket.allow(now)
        total = self.total.allow(now)
        return own and total

    def admits(self, address: str, now: float | None = None) -> bool:
        entry = self.addresses.get(address)
        if entry is None:
            return True
        if now is None:
            now = time.monotonic()
        if entry.bucket.available(now) < 1:
            return False
        return self.total.available(now) >= 1 or now - entry.last > self.limits.penalty


class H2Budgets:
    """What the HTTP/2 connections of one server share (kept on its ``ServerState``)."""

    __slots__ = ("window", "resets")

    def __init__(self, buffered_body: int, resets: ResetLimits | None = None) -> None:
        self.window = WindowBudget(buffered_body)
        self.resets = ResetBudget(resets)

    @classmethod
    def of(cls, state: Any, buffered_body: int) -> H2Budgets:
        """The server's budgets, made by its first HTTP/2 connection."""
        budgets = state.h2_budgets
        if budgets is None:
            budgets = state.h2_budgets = cls(buffered_body)
        return budgets


# -- what the h2 library holds ----------------------------------------------------------------


def pending_header_block(conn: Any) -> tuple[object, int] | None:
    """The header block ``conn`` (an ``h2`` connection) has begun to receive and not finished:
    (its first frame, the bytes of field block held so far), or None.

    ``h2`` keeps the HEADERS and CONTINUATION frames of an unfinished block in its frame
    buffer's ``_headers_buffer`` until END_HEADERS (up to 64 frames, ``CONTINUATION_BACKLOG``)
    and reports nothing meanwhile. That attribute is private: it is read here only, and
    tests/server/test_h2_limits.py pins what this function sees on the installed ``h2``.
    """
    frames = conn.incoming_buffer._headers_buffer
    if not frames:
        return None
    return frames[0], sum(len(frame.data) for frame in frames)
